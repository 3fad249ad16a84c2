/*
 * analyzer.read._fastscan: the fast path's hot loop, in C.
 *
 * libpcap (loaded with dlopen, so building needs no libpcap headers) reads the capture and
 * `classify` below looks at every frame.  Keepalive requests and replies of the shapes it
 * knows (Ethernet with VLAN tags or raw IP; IPv4/IPv6 outer and inner headers without
 * options that matter; GRE without checksum or routing; Cisco MetaData) are decoded here
 * into compact records (struct keepalive); non-GRE frames and GRE data packets are counted
 * here, and for data packets the flow (outer source, destination, key) and time are kept
 * for blackhole accounting.  Anything else goes to Python as the frame itself, in the same
 * batches (on_batch), and is decoded by analyzer.read.packet.  `classify` never decides
 * differently from analyzer.read.packet.decode_frame: it only answers where that function
 * certainly would, with the same fields (hypothesis tests hold it to that), and defers
 * otherwise.
 *
 * Data times and frame numbers are not kept in memory: each flow fills blocks of 256
 * (float64 time, int64 frame number) records that are appended to a spill file (its last
 * block holding only its records, so the file grows with the packets, not the flows),
 * which Python reads back where it looks (analyzer.read.fastpath.SpilledColumn).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* --- the few libpcap declarations we use (ABI-stable since libpcap 1.5) --- */

struct pcap_pkthdr_abi {
    struct timeval ts;
    uint32_t caplen;
    uint32_t len;
};

struct bpf_program_abi {
    unsigned int bf_len;
    void *bf_insns;
};

typedef void pcap_t;
typedef pcap_t *(*fopen_offline_fn)(FILE *, unsigned int, char *);
typedef int (*datalink_fn)(pcap_t *);
typedef int (*compile_fn)(pcap_t *, struct bpf_program_abi *, const char *, int, uint32_t);
typedef void (*freecode_fn)(struct bpf_program_abi *);
typedef int (*offline_filter_fn)(const struct bpf_program_abi *, const struct pcap_pkthdr_abi *,
                                 const unsigned char *);
typedef char *(*geterr_fn)(pcap_t *);
typedef void (*close_fn)(pcap_t *);
typedef FILE *(*file_fn)(pcap_t *);
typedef void (*handler_fn)(unsigned char *, const struct pcap_pkthdr_abi *, const unsigned char *);
typedef int (*dispatch_fn)(pcap_t *, int, handler_fn, unsigned char *);
typedef void (*breakloop_fn)(pcap_t *);
typedef int (*major_version_fn)(pcap_t *);
typedef int (*snapshot_fn)(pcap_t *);

#define PCAP_ERRBUF_SIZE 256
#define PCAP_TSTAMP_PRECISION_NANO 1
#define PCAP_NETMASK_UNKNOWN 0xffffffffu

struct libpcap {
    fopen_offline_fn fopen_offline;
    datalink_fn datalink;
    compile_fn compile;
    freecode_fn freecode;
    offline_filter_fn offline_filter;
    geterr_fn geterr;
    close_fn close;
    file_fn file;
    dispatch_fn dispatch;
    breakloop_fn breakloop;
    major_version_fn major_version;
    snapshot_fn snapshot;
};

static PyObject *ScanError;

/* Load the first of `candidates` (a sequence of paths or sonames) that dlopen takes. */
static int load_libpcap(PyObject *candidates, struct libpcap *lib) {
    PyObject *sequence = PySequence_Fast(candidates, "libpcap candidates must be a sequence");
    if (sequence == NULL)
        return -1;
    void *handle = NULL;
    const char *path = NULL;
    for (Py_ssize_t i = 0; handle == NULL && i < PySequence_Fast_GET_SIZE(sequence); i++) {
        path = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(sequence, i));
        if (path == NULL) {
            Py_DECREF(sequence);
            return -1;
        }
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    Py_DECREF(sequence);
    if (handle == NULL) {
        PyErr_Format(ScanError, "no libpcap shared library could be loaded (last: %s)",
                     path != NULL ? dlerror() : "no candidates");
        return -1;
    }
#define LOAD(field, name)                                                                   \
    do {                                                                                    \
        *(void **)(&lib->field) = dlsym(handle, name);                                      \
        if (lib->field == NULL) {                                                           \
            PyErr_Format(ScanError, "libpcap %s has no %s (too old?)", path, name);         \
            return -1;                                                                      \
        }                                                                                   \
    } while (0)
    LOAD(fopen_offline, "pcap_fopen_offline_with_tstamp_precision");
    LOAD(datalink, "pcap_datalink");
    LOAD(compile, "pcap_compile");
    LOAD(freecode, "pcap_freecode");
    LOAD(offline_filter, "pcap_offline_filter");
    LOAD(geterr, "pcap_geterr");
    LOAD(close, "pcap_close");
    LOAD(file, "pcap_file");
    LOAD(dispatch, "pcap_dispatch");
    LOAD(breakloop, "pcap_breakloop");
    LOAD(major_version, "pcap_major_version");
    LOAD(snapshot, "pcap_snapshot");
#undef LOAD
    return 0; /* the library stays loaded: pcapy may use the same one */
}

/* --- classification: the shapes of GRE data and non-GRE frames decided here --- */

enum { CLASS_DEFER = 0, CLASS_OTHER = 1, CLASS_DATA = 2, CLASS_REQUEST = 3, CLASS_REPLY = 4 };

struct flow_key {
    uint8_t family; /* 4 or 6 */
    uint8_t has_key;
    uint8_t src[16];
    uint8_t dst[16];
    uint32_t key;
};
_Static_assert(sizeof(struct flow_key) % 8 == 0, "hash_key reads whole words");

/* A keepalive decoded here, as handed to Python (analyzer.read.fastpath.KEEPALIVE_RECORD):
 * the fields analyzer.read.packet.decode_frame would give, for the shapes decided here. */
#define KA_KEY 1        /* the outer GRE header has a key */
#define KA_INNER_KEY 2  /* the inner GRE header has a key */
#define KA_METADATA 4   /* the inner packet is behind a Cisco MetaData header */
#pragma pack(push, 1)
struct keepalive {
    int64_t frame;
    double time;
    uint16_t ip_id, inner_ip_id;
    /* The rest, 88 bytes, is the keepalive's shape: the same for every keepalive of a flow,
     * nearly always, so Python looks it up whole instead of decoding it each time. */
    uint8_t kind; /* CLASS_REQUEST or CLASS_REPLY; 0: the next frame of the batch's list */
    uint8_t version, ttl, flags;
    uint16_t gre_protocol, sgt;
    uint32_t key, payload_length;
    uint8_t inner_version, inner_ttl;
    uint16_t pad;
    uint32_t inner_key;
    uint8_t src[16], dst[16], inner_src[16], inner_dst[16];
};
#pragma pack(pop)
_Static_assert(sizeof(struct keepalive) == 108, "the record layout Python unpacks");

static inline unsigned be16(const unsigned char *p) { return ((unsigned)p[0] << 8) | p[1]; }
static inline uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

#define LINKTYPE_ETHERNET 1
#define LINKTYPE_RAW 101
#define LINKTYPE_IPV4 228
#define LINKTYPE_IPV6 229
#define GRE_C 0x8000
#define GRE_R 0x4000
#define GRE_K 0x2000
#define GRE_S 0x1000

static int ip6_extension(unsigned next_header) {
    switch (next_header) {
    case 0: case 43: case 44: case 51: case 60: case 135: case 139: case 140: case 253: case 254:
        return 1;
    default:
        return 0;
    }
}

/* The keepalive GRE header (protocol type 0) at `gre`: its length (key and sequence
 * number included), or 0 if it is not one decided here. */
static size_t keepalive_gre(const unsigned char *gre, size_t length, uint32_t *key, int *has_key) {
    if (length < 4 || be16(gre + 2) != 0)
        return 0;
    unsigned flags = be16(gre);
    if ((flags & 0x0007) != 0 || (flags & (GRE_C | GRE_R)) != 0)
        return 0;
    size_t offset = 4;
    *has_key = 0;
    if (flags & GRE_K) {
        if (length < offset + 4)
            return 0;
        *has_key = 1;
        *key = be32(gre + offset);
        offset += 4;
    }
    if (flags & GRE_S)
        offset += 4;
    return length < offset ? 0 : offset;
}

/* The inner packet of a request (`ethertype` 0x0800/0x86DD, `length` captured bytes): fill
 * the inner fields of `ka` and return CLASS_REQUEST, or CLASS_DEFER. */
static int keepalive_request(unsigned ethertype, const unsigned char *ip, size_t length,
                             struct keepalive *ka) {
    const unsigned char *gre;
    size_t captured, declared;
    if (ethertype == 0x0800) {
        if (length < 20 || (ip[0] >> 4) != 4)
            return CLASS_DEFER;
        size_t ihl = (size_t)(ip[0] & 0x0F) * 4;
        if (ihl < 20 || length < ihl || ip[9] != 47 || (be16(ip + 6) & 0x3FFF))
            return CLASS_DEFER;
        size_t total = be16(ip + 2);
        if (total == 0)
            total = length;
        if (total < ihl)
            return CLASS_DEFER;
        gre = ip + ihl;
        captured = (total < length ? total : length) - ihl;
        declared = total - ihl;
        ka->inner_version = 4;
        ka->inner_ttl = ip[8];
        ka->inner_ip_id = (uint16_t)be16(ip + 4);
        memcpy(ka->inner_src, ip + 12, 4);
        memcpy(ka->inner_dst, ip + 16, 4);
    } else {
        if (length < 40 || (ip[0] >> 4) != 6 || ip[6] != 47)
            return CLASS_DEFER;
        declared = be16(ip + 4);
        if (declared == 0)
            declared = length - 40;
        captured = declared < length - 40 ? declared : length - 40;
        gre = ip + 40;
        ka->inner_version = 6;
        ka->inner_ttl = ip[7];
        memcpy(ka->inner_src, ip + 8, 16);
        memcpy(ka->inner_dst, ip + 24, 16);
    }
    int has_key;
    size_t header = keepalive_gre(gre, captured, &ka->inner_key, &has_key);
    if (header == 0)
        return CLASS_DEFER;
    if (has_key)
        ka->flags |= KA_INNER_KEY;
    ka->payload_length = (uint32_t)(declared - header);
    return CLASS_REQUEST;
}

/* The GRE header at `gre` (`length` captured bytes, already cut at the IP length;
 * `declared` bytes per the IP header). With `ka`, a keepalive is decoded into it. */
static int classify_gre(const unsigned char *gre, size_t length, size_t declared,
                        struct flow_key *flow, struct keepalive *ka) {
    if (length < 4)
        return CLASS_DEFER;
    unsigned flags = be16(gre), protocol = be16(gre + 2);
    if ((flags & 0x0007) != 0 || (flags & (GRE_C | GRE_R)) != 0)
        return CLASS_DEFER; /* PPTP, bad versions, checksums, routing: Python's business */
    size_t offset = 4;
    if (flags & GRE_K) {
        if (length < offset + 4)
            return CLASS_DEFER;
        flow->has_key = 1;
        flow->key = be32(gre + offset);
        offset += 4;
    }
    if (flags & GRE_S)
        offset += 4;
    if (length < offset)
        return CLASS_DEFER;
    const unsigned char *inner = gre + offset;
    size_t inner_length = length - offset;
    if (ka != NULL) {
        ka->gre_protocol = (uint16_t)protocol;
        if (flow->has_key) {
            ka->flags |= KA_KEY;
            ka->key = flow->key;
        }
    }
    switch (protocol) {
    case 0: /* a reply */
        if (ka == NULL)
            return CLASS_DEFER;
        ka->payload_length = (uint32_t)(declared - offset);
        return CLASS_REPLY;
    case 0x8909: /* Cisco MetaData: may carry a request */
        if (ka == NULL || inner_length < 8)
            return CLASS_DEFER;
        protocol = be16(inner);
        if (protocol != 0x0800 && protocol != 0x86DD)
            return CLASS_DEFER;
        ka->flags |= KA_METADATA;
        ka->sgt = (uint16_t)be16(inner + 6);
        return keepalive_request(protocol, inner + 8, inner_length - 8, ka);
    case 0x0004: /* Huawei's request type on some releases: rare, Python's business */
        return CLASS_DEFER;
    case 0x0800:
        if (inner_length >= 10 && inner[9] == 47) /* GRE in the tunnel: may be a request */
            return ka == NULL ? CLASS_DEFER : keepalive_request(protocol, inner, inner_length, ka);
        return CLASS_DATA;
    case 0x86DD:
        if (inner_length >= 40 && inner[6] == 47)
            return ka == NULL ? CLASS_DEFER : keepalive_request(protocol, inner, inner_length, ka);
        if (inner_length >= 40 && ip6_extension(inner[6]))
            return CLASS_DEFER;
        return CLASS_DATA;
    default:
        return CLASS_DATA;
    }
}

/* What a frame is: CLASS_OTHER, CLASS_DATA (its flow in `flow`), CLASS_REQUEST or
 * CLASS_REPLY (decoded into `ka`, when given; without it keepalives are CLASS_DEFER), or
 * CLASS_DEFER: analyzer.read.packet decides. */
static int classify(int linktype, const unsigned char *data, size_t caplen, struct flow_key *flow,
                    struct keepalive *ka) {
    unsigned ethertype;
    size_t offset;
    memset(flow, 0, sizeof *flow);
    if (linktype == LINKTYPE_ETHERNET) {
        if (caplen < 14)
            return CLASS_DEFER;
        ethertype = be16(data + 12);
        if (ethertype <= 1500)
            return CLASS_OTHER; /* 802.3 + LLC */
        offset = 14;
    } else if (linktype == LINKTYPE_RAW || linktype == LINKTYPE_IPV4 || linktype == LINKTYPE_IPV6) {
        if (caplen < 1)
            return CLASS_DEFER;
        unsigned version = data[0] >> 4;
        if (version == 4)
            ethertype = 0x0800;
        else if (version == 6)
            ethertype = 0x86DD;
        else
            return CLASS_DEFER;
        offset = 0;
    } else {
        return CLASS_DEFER;
    }
    while (ethertype == 0x8100 || ethertype == 0x88A8 || ethertype == 0x9100 || ethertype == 0x9200) {
        if (caplen < offset + 4)
            return CLASS_DEFER;
        ethertype = be16(data + offset + 2);
        offset += 4;
    }
    if (ethertype == 0x8864) { /* PPPoE session: 6-byte header, then the PPP protocol */
        if (caplen < offset + 8)
            return CLASS_DEFER;
        unsigned ppp = be16(data + offset + 6);
        if (ppp == 0x0021)
            ethertype = 0x0800;
        else if (ppp == 0x0057)
            ethertype = 0x86DD;
        else
            return CLASS_OTHER; /* LCP, IPCP, ...: no IP */
        offset += 8;
    }
    const unsigned char *ip = data + offset;
    size_t length = caplen - offset;
    if (ethertype == 0x0800) {
        if (length < 20 || (ip[0] >> 4) != 4)
            return CLASS_DEFER;
        size_t ihl = (size_t)(ip[0] & 0x0F) * 4;
        if (ihl < 20 || length < ihl)
            return CLASS_DEFER;
        size_t total = be16(ip + 2);
        if (total == 0)
            total = length; /* TCP segmentation offload */
        if (total < ihl)
            return CLASS_DEFER;
        unsigned protocol = ip[9];
        if (protocol == 4 || protocol == 41)
            return CLASS_DEFER; /* IP in IP: the GRE may be one level in */
        if (protocol != 47)
            return CLASS_OTHER;
        if (be16(ip + 6) & 0x3FFF)
            return CLASS_DEFER; /* a fragment */
        flow->family = 4;
        memcpy(flow->src, ip + 12, 4);
        memcpy(flow->dst, ip + 16, 4);
        if (ka != NULL) {
            ka->version = 4;
            ka->ttl = ip[8];
            ka->ip_id = (uint16_t)be16(ip + 4);
            memcpy(ka->src, ip + 12, 4);
            memcpy(ka->dst, ip + 16, 4);
        }
        size_t end = total < length ? total : length;
        return classify_gre(ip + ihl, end - ihl, total - ihl, flow, ka);
    }
    if (ethertype == 0x86DD) {
        if (length < 40 || (ip[0] >> 4) != 6)
            return CLASS_DEFER;
        unsigned next_header = ip[6];
        if (next_header == 4 || next_header == 41 || ip6_extension(next_header))
            return CLASS_DEFER;
        if (next_header != 47)
            return CLASS_OTHER;
        size_t declared = be16(ip + 4);
        if (declared == 0)
            declared = length - 40;
        flow->family = 6;
        memcpy(flow->src, ip + 8, 16);
        memcpy(flow->dst, ip + 24, 16);
        if (ka != NULL) {
            ka->version = 6;
            ka->ttl = ip[7];
            memcpy(ka->src, ip + 8, 16);
            memcpy(ka->dst, ip + 24, 16);
        }
        size_t available = length - 40;
        return classify_gre(ip + 40, declared < available ? declared : available, declared, flow,
                            ka);
    }
    if (ethertype == 0x8847 || ethertype == 0x8848)
        return CLASS_DEFER; /* MPLS: Python walks the label stack */
    return CLASS_OTHER;
}

/* --- per-flow data, spilled to a file --- */

/* Per data packet the loop touches a flow's entry and little else: with thousands of flows
 * interleaved (a hub), anything scattered wider waits on memory for every packet. The index
 * (8 bytes a slot) finds the entry, which holds the flow's counters and its last CHUNK
 * records; a full chunk is copied into the flow's block (BLOCK records, 4 KiB, one such
 * copy per CHUNK packets), and a full block is appended to the spill file. */

#define BLOCK 256 /* records per spilled block (4 KiB) */
#define CHUNK 8   /* records gathered in the flow's entry before they go to its block */
_Static_assert(BLOCK % CHUNK == 0, "a block takes whole chunks");

struct record {
    double time;
    int64_t frame;
};

struct flow {
    /* what every packet of the flow reads or writes, in the entry's first 64 bytes */
    struct flow_key key;
    int32_t fill; /* records in `chunk` */
    int32_t sorted;
    int64_t count;
    double last_time; /* of its last record in frame order */
    /* what one packet in CHUNK touches, or only the first */
    int64_t last_frame;
    double first_time; /* of its first record in frame order */
    int64_t first_frame;
    struct record *block; /* the block being filled (NULL until its first chunk) */
    size_t block_fill;
    uint64_t *blocks; /* spill-file offsets of this flow's blocks, in order */
    size_t nblocks, block_capacity;
    struct record chunk[CHUNK];
};
_Static_assert(offsetof(struct flow, last_frame) == 64, "the per-packet fields share a line");
_Static_assert(sizeof(struct flow) % 64 == 0, "entries start on cache lines");

struct slot {
    uint32_t tag; /* the hash's high half */
    uint32_t id;  /* 1 + the flow's place in `flows`; 0: empty */
};

#define STAGING_BYTES (1 << 20) /* spilled blocks are written 256 at a time */

struct flow_table {
    struct slot *index; /* open addressing, linear probing, at most half full */
    size_t size;        /* slots: a power of two */
    struct flow *flows; /* in the order they were first seen */
    size_t used, capacity;
    int spill_fd;
    unsigned char *staging; /* blocks not yet written, from file offset staging_at */
    uint64_t staging_at;
    size_t staged;
};

static uint64_t hash_key(const struct flow_key *k) {
    /* 8 bytes at a time (the key is 40 bytes, zero-padded); a multiply-xorshift mix */
    uint64_t h = 0x9E3779B97F4A7C15ull, word;
    const unsigned char *bytes = (const unsigned char *)k;
    for (size_t i = 0; i + 8 <= sizeof *k; i += 8) {
        memcpy(&word, bytes + i, 8);
        h = (h ^ word) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    return h;
}

static void index_put(struct slot *index, size_t size, uint64_t hash, uint32_t id) {
    size_t j = hash & (size - 1);
    while (index[j].id != 0)
        j = (j + 1) & (size - 1);
    index[j].tag = (uint32_t)(hash >> 32);
    index[j].id = id;
}

static int index_grow(struct flow_table *table) {
    size_t size = table->size ? table->size * 2 : 1024;
    struct slot *index = calloc(size, sizeof *index);
    if (index == NULL)
        return -1;
    for (size_t i = 0; i < table->used; i++)
        index_put(index, size, hash_key(&table->flows[i].key), (uint32_t)(i + 1));
    free(table->index);
    table->index = index;
    table->size = size;
    return 0;
}

static int flows_grow(struct flow_table *table) {
    size_t capacity = table->capacity ? table->capacity * 2 : 256;
    void *flows;
    if (capacity >= UINT32_MAX || posix_memalign(&flows, 64, capacity * sizeof(struct flow)) != 0)
        return -1;
    if (table->used > 0)
        memcpy(flows, table->flows, table->used * sizeof(struct flow));
    free(table->flows);
    table->flows = flows;
    table->capacity = capacity;
    return 0;
}

/* The flow of `key`, made if new (NULL: no memory). The pointer holds until the next call. */
static struct flow *table_find(struct flow_table *table, const struct flow_key *key) {
    uint64_t hash = hash_key(key);
    uint32_t tag = (uint32_t)(hash >> 32);
    size_t mask = table->size - 1;
    for (size_t j = hash & mask; table->size > 0 && table->index[j].id != 0; j = (j + 1) & mask) {
        if (table->index[j].tag != tag)
            continue;
        struct flow *flow = &table->flows[table->index[j].id - 1];
        if (memcmp(&flow->key, key, sizeof *key) == 0)
            return flow;
    }
    if ((table->used + 1) * 2 > table->size && index_grow(table) < 0)
        return NULL;
    if (table->used == table->capacity && flows_grow(table) < 0)
        return NULL;
    struct flow *flow = &table->flows[table->used++];
    memset(flow, 0, offsetof(struct flow, chunk));
    flow->key = *key;
    flow->sorted = 1;
    index_put(table->index, table->size, hash, (uint32_t)table->used);
    return flow;
}

static int write_all(int fd, const void *buffer, size_t size, uint64_t offset) {
    const char *p = buffer;
    while (size > 0) {
        ssize_t written = pwrite(fd, p, size, (off_t)offset);
        if (written < 0)
            return -1;
        p += written;
        size -= (size_t)written;
        offset += (uint64_t)written;
    }
    return 0;
}

static int table_write_staged(struct flow_table *table) {
    if (table->staged == 0)
        return 0;
    if (write_all(table->spill_fd, table->staging, table->staged, table->staging_at) < 0)
        return -2;
    table->staging_at += table->staged;
    table->staged = 0;
    return 0;
}

/* Append `n` records to the spill file as the flow's next block. -1: no memory, -2: I/O. */
static int flow_spill(struct flow_table *table, struct flow *flow, const struct record *records,
                      size_t n) {
    if (table->staging == NULL && (table->staging = malloc(STAGING_BYTES)) == NULL)
        return -1;
    if (flow->nblocks == flow->block_capacity) {
        size_t capacity = flow->block_capacity ? flow->block_capacity * 2 : 1;
        uint64_t *blocks = realloc(flow->blocks, capacity * sizeof *blocks);
        if (blocks == NULL)
            return -1;
        flow->blocks = blocks;
        flow->block_capacity = capacity;
    }
    /* Only the records are written: a flow's last block may be partial (every other one is
     * full), so the file grows with the packets, not with the flows. */
    size_t size = n * sizeof(struct record);
    if (table->staged + size > STAGING_BYTES && table_write_staged(table) < 0)
        return -2;
    memcpy(table->staging + table->staged, records, size);
    flow->blocks[flow->nblocks++] = table->staging_at + table->staged;
    table->staged += size;
    return 0;
}

/* Move the flow's full chunk into its block, and a full block to the spill file. */
static int flow_gather(struct flow_table *table, struct flow *flow) {
    if (flow->block == NULL && (flow->block = malloc(BLOCK * sizeof(struct record))) == NULL)
        return -1;
    memcpy(flow->block + flow->block_fill, flow->chunk, CHUNK * sizeof(struct record));
    flow->block_fill += CHUNK;
    flow->fill = 0;
    if (flow->block_fill < BLOCK)
        return 0;
    flow->block_fill = 0;
    return flow_spill(table, flow, flow->block, BLOCK);
}

static inline int flow_add(struct flow_table *table, struct flow *flow, double time,
                           int64_t frame) {
    if (flow->count == 0) {
        flow->first_time = time;
        flow->first_frame = frame;
    } else if (time < flow->last_time) {
        flow->sorted = 0;
    }
    flow->last_time = time;
    flow->last_frame = frame;
    flow->count++;
    flow->chunk[flow->fill].time = time;
    flow->chunk[flow->fill].frame = frame;
    return ++flow->fill == CHUNK ? flow_gather(table, flow) : 0;
}

/* Spill every flow's last records (a partial block), and write what is staged. */
static int table_finish(struct flow_table *table) {
    for (size_t i = 0; i < table->used; i++) {
        struct flow *flow = &table->flows[i];
        size_t n = flow->block_fill + (size_t)flow->fill;
        int spilled = 0;
        if (flow->block_fill == 0 && flow->fill > 0) {
            spilled = flow_spill(table, flow, flow->chunk, n);
        } else if (n > 0) {
            memcpy(flow->block + flow->block_fill, flow->chunk,
                   (size_t)flow->fill * sizeof(struct record));
            spilled = flow_spill(table, flow, flow->block, n);
        }
        if (spilled < 0)
            return -1;
        flow->fill = 0;
        flow->block_fill = 0;
        free(flow->block); /* spilled: not needed while Python builds the flow list */
        flow->block = NULL;
    }
    return table_write_staged(table) < 0 ? -1 : 0;
}

static void table_free(struct flow_table *table) {
    for (size_t i = 0; i < table->used; i++) {
        free(table->flows[i].block);
        free(table->flows[i].blocks);
    }
    free(table->index);
    free(table->flows);
    free(table->staging);
    table->index = NULL;
    table->flows = NULL;
    table->staging = NULL;
    table->size = table->used = table->capacity = 0;
}

/* --- frames for Python, handed over in batches (the loop runs without the GIL) --- */

#define BATCH_FRAMES 512
#define BATCH_BYTES (1 << 20)

struct batch {
    struct keepalive records[BATCH_FRAMES]; /* in frame order; kind 0: the next frame */
    size_t nrecords;
    int64_t numbers[BATCH_FRAMES];
    double times[BATCH_FRAMES];
    uint32_t caplens[BATCH_FRAMES], lens[BATCH_FRAMES];
    size_t offsets[BATCH_FRAMES];
    size_t count;
    unsigned char *bytes;
    size_t used, size;
};

static int batch_add(struct batch *batch, int64_t number, double time,
                     const struct pcap_pkthdr_abi *header, const unsigned char *data) {
    if (batch->used + header->caplen > batch->size) {
        size_t size = batch->size ? batch->size : BATCH_BYTES;
        while (size < batch->used + header->caplen)
            size *= 2;
        unsigned char *bytes = realloc(batch->bytes, size);
        if (bytes == NULL)
            return -1;
        batch->bytes = bytes;
        batch->size = size;
    }
    size_t i = batch->count++;
    struct keepalive *record = &batch->records[batch->nrecords++];
    memset(record, 0, sizeof *record);
    record->frame = number;
    record->time = time;
    batch->numbers[i] = number;
    batch->times[i] = time;
    batch->caplens[i] = header->caplen;
    batch->lens[i] = header->len;
    batch->offsets[i] = batch->used;
    if (header->caplen > 0) /* a zero-length frame may come with no buffer at all */
        memcpy(batch->bytes + batch->used, data, header->caplen);
    batch->used += header->caplen;
    return 0;
}

static int batch_full(const struct batch *batch) {
    return batch->nrecords == BATCH_FRAMES || batch->used >= BATCH_BYTES;
}

/* With the GIL: pass the batch to on_batch as (a list of (number, time, linktype, data,
 * wire_length) tuples, the keepalive records as bytes). 1: go on, 0: on_batch returned
 * False (stop), -1: exception. */
static int batch_flush(struct batch *batch, PyObject *on_batch, int linktype) {
    if (batch->nrecords == 0)
        return 1;
    PyObject *list = PyList_New((Py_ssize_t)batch->count);
    if (list == NULL)
        return -1;
    for (size_t i = 0; i < batch->count; i++) {
        PyObject *frame = Py_BuildValue("(Ldiy#I)", (long long)batch->numbers[i], batch->times[i],
                                        linktype,
                                        batch->bytes != NULL /* else y# would give None */
                                            ? (const char *)batch->bytes + batch->offsets[i]
                                            : "",
                                        (Py_ssize_t)batch->caplens[i], (unsigned)batch->lens[i]);
        if (frame == NULL) {
            Py_DECREF(list);
            return -1;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, frame);
    }
    PyObject *records = PyBytes_FromStringAndSize((const char *)batch->records,
                                                  (Py_ssize_t)(batch->nrecords * sizeof(struct keepalive)));
    if (records == NULL) {
        Py_DECREF(list);
        return -1;
    }
    batch->count = 0;
    batch->nrecords = 0;
    batch->used = 0;
    PyObject *answer = PyObject_CallFunctionObjArgs(on_batch, list, records, NULL);
    Py_DECREF(list);
    Py_DECREF(records);
    if (answer == NULL)
        return -1;
    int go_on = answer != Py_False;
    Py_DECREF(answer);
    return go_on;
}

/* --- Python API --- */

static PyObject *flows_list(struct flow_table *table) {
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < table->used; i++) {
        struct flow *flow = &table->flows[i];
        int width = flow->key.family == 4 ? 4 : 16;
        PyObject *key = flow->key.has_key ? PyLong_FromUnsignedLong(flow->key.key) : Py_NewRef(Py_None);
        if (key == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyObject *item = Py_BuildValue(
            "(y#y#NLy#OdLdL)", (const char *)flow->key.src, (Py_ssize_t)width,
            (const char *)flow->key.dst, (Py_ssize_t)width, key, (long long)flow->count,
            (const char *)flow->blocks, (Py_ssize_t)(flow->nblocks * sizeof(uint64_t)),
            flow->sorted ? Py_True : Py_False, flow->first_time, (long long)flow->first_frame,
            flow->last_time, (long long)flow->last_frame);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    return list;
}

/* --- the loop: libpcap calls on_packet for every frame of the file --- */

struct loop {
    struct libpcap *lib;
    pcap_t *pcap;
    struct flow_table *table;
    struct batch *batch;
    FILE *stream;
    PyObject *on_batch, *progress;
    PyThreadState *thread; /* saved while the loop runs without the GIL */
    int linktype, include_data;
    int failure; /* 1: no memory, 2: spill file error (errno), 3: Python exception, 4: stop,
                  * 5: libpcap reads the file differently (`differs`) */
    int error_number; /* errno of a spill file error */
    int64_t packets, data_packets;
    uint64_t consumed; /* classic pcap: where the next record starts */
    double start, end;
    int pcapng; /* the file is pcapng (libpcap's major version 1), else classic pcap */
    uint32_t snapshot; /* libpcap's snapshot length */
    const char *differs; /* failure 5: how libpcap reads the record at differs_at */
    uint64_t differs_at;
};

/* Classic pcap: how libpcap read this record differently from analyzer.read.capture, or NULL
 * (docs/readers.md). Called with the FILE positioned after the record. */
static const char *pcap_record_differs(struct loop *loop, const struct pcap_pkthdr_abi *header) {
    if (header->ts.tv_usec < 0) /* a 32-bit field: before 1.10.5 libpcap sign-extends it */
        return "a sub-second timestamp of 2^31 or more (libpcap < 1.10.5 reads it as negative)";
    if (header->caplen == loop->snapshot && loop->stream != NULL &&
        (uint64_t)ftello(loop->stream) != loop->consumed) /* it skipped bytes past the snaplen */
        return "a record longer than the file's snapshot length (libpcap cuts it)";
    return NULL;
}

static void on_packet(unsigned char *user, const struct pcap_pkthdr_abi *header,
                      const unsigned char *data) {
    struct loop *loop = (struct loop *)user;
    int64_t number = ++loop->packets;
    loop->consumed += 16 + (uint64_t)header->caplen;
    if (!loop->pcapng && (loop->differs = pcap_record_differs(loop, header)) != NULL) {
        loop->differs_at = loop->consumed - 16 - header->caplen;
        loop->failure = 5;
        loop->lib->breakloop(loop->pcap);
        return;
    }
    /* tv_usec holds nanoseconds here; the division matches the pure-Python reader's. The
     * seconds are unsigned in both formats; libpcap before 1.10.5 sign-extends a classic
     * pcap's 32 bits, and a pcapng time past 2^63 s wraps through time_t: the low bits are
     * exact either way (docs/readers.md). */
    double seconds = loop->pcapng ? (double)(uint64_t)header->ts.tv_sec
                                  : (double)(uint32_t)header->ts.tv_sec;
    double time = seconds + (double)header->ts.tv_usec / 1e9;
    if (number == 1 || time < loop->start)
        loop->start = time;
    if (number == 1 || time > loop->end)
        loop->end = time;
    struct flow_key key;
    struct batch *batch = loop->batch;
    struct keepalive *record = &batch->records[batch->nrecords];
    memset(record, 0, sizeof *record);
    int kind = classify(loop->linktype, data, header->caplen, &key, record);
    if (kind == CLASS_REQUEST || kind == CLASS_REPLY) {
        record->frame = number;
        record->time = time;
        record->kind = (uint8_t)kind;
        batch->nrecords++;
    } else if (kind == CLASS_DATA) {
        if (loop->include_data) {
            struct flow *flow = table_find(loop->table, &key);
            int added = flow == NULL ? -1 : flow_add(loop->table, flow, time, number);
            if (added < 0) {
                loop->failure = added == -1 ? 1 : 2;
                loop->error_number = errno;
                loop->lib->breakloop(loop->pcap);
                return;
            }
        }
        loop->data_packets++;
    } else if (kind == CLASS_DEFER && batch_add(loop->batch, number, time, header, data) < 0) {
        loop->failure = 1;
        loop->lib->breakloop(loop->pcap);
        return;
    }
    int report = (number & 0xFFFF) == 0 && loop->progress != Py_None;
    if (batch_full(loop->batch) || report) {
        long position = report && loop->stream != NULL ? ftell(loop->stream) : -1;
        PyEval_RestoreThread(loop->thread);
        int go_on = batch_flush(loop->batch, loop->on_batch, loop->linktype);
        if (go_on == 1 && report) {
            PyObject *answer = position >= 0 ? PyObject_CallFunction(loop->progress, "l", position)
                                             : PyObject_CallFunction(loop->progress, "O", Py_None);
            Py_XDECREF(answer);
            go_on = answer == NULL ? -1 : 1;
        }
        loop->thread = PyEval_SaveThread();
        if (go_on != 1) {
            loop->failure = go_on < 0 ? 3 : 4;
            loop->lib->breakloop(loop->pcap);
        }
    }
}

PyDoc_STRVAR(scan_doc,
"scan(libraries, path, filter_for, on_batch, include_data, spill_fd, progress)\n"
"\n"
"Read `path` with the first libpcap of `libraries` that loads (nanosecond timestamps).\n"
"`filter_for(dlt)` returns (a BPF expression, unused here, LINKTYPE_ value). Keepalives\n"
"decoded here and the frames this module leaves to Python are passed, in order and in\n"
"batches, to `on_batch(list of (number, time, linktype, data, wire_length), records)`,\n"
"`records` being bytes of struct keepalive records in frame order (kind 0: the next frame\n"
"of the list); if it returns False the\n"
"scan stops there. The loop runs without the GIL (call scan from a worker thread to decode\n"
"in parallel). With `include_data`, GRE data packets are recorded per flow in `spill_fd`:\n"
"blocks of 256 (float64 time, int64 frame number) records, a flow's last one holding only\n"
"its records. `progress(bytes)` is\n"
"called now and then with the file position (or None).\n"
"\n"
"Returns (linktype, packets, start, end, data_packets, flows, stopped), flows being\n"
"(src, dst, key, count, blocks, sorted, first time, first frame, last time, last frame)\n"
"tuples, `blocks` the native uint64 file offsets of the flow's blocks in order (all full but\n"
"the last), the first and last record in frame order; `stopped` is None after a clean end of\n"
"file, else\n"
"(libpcap's error, where the failed record starts if the file is classic pcap). Raises\n"
"ScanError if libpcap cannot open the file or compile the filter.");

#define READ_BUFFER (1 << 20) /* bytes of the capture file read at a time */

static PyObject *scan(PyObject *self, PyObject *args) {
    const char *path;
    PyObject *libraries, *filter_for, *on_batch, *progress;
    int include_data, spill_fd;
    if (!PyArg_ParseTuple(args, "OsOOpiO", &libraries, &path, &filter_for, &on_batch,
                          &include_data, &spill_fd, &progress))
        return NULL;
    struct libpcap lib;
    if (load_libpcap(libraries, &lib) < 0)
        return NULL;
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    /* Opened here rather than by pcap_open_offline for a larger stdio buffer: libpcap's
     * own reads the file 4 KiB at a time, a read system call each (62,000 for 255 MB). */
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        PyErr_Format(ScanError, "%s: %s", path, strerror(errno));
        return NULL;
    }
    /* glibc takes the size only with a buffer given; without one the default stays */
    char *buffer = malloc(READ_BUFFER);
    if (buffer != NULL && setvbuf(file, buffer, _IOFBF, READ_BUFFER) != 0) {
        free(buffer);
        buffer = NULL;
    }
    pcap_t *pcap = lib.fopen_offline(file, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (pcap == NULL) {
        fclose(file); /* libpcap closes it only once it has opened it */
        free(buffer);
        PyErr_Format(ScanError, "%s", errbuf[0] ? errbuf : "libpcap cannot open the file");
        return NULL;
    }
    int dlt = lib.datalink(pcap), linktype;
    struct flow_table table = {.spill_fd = spill_fd};
    PyObject *result = NULL, *stopped = NULL;
    const char *text;
    PyObject *expression = PyObject_CallFunction(filter_for, "i", dlt);
    if (expression == NULL)
        goto done;
    if (!PyArg_ParseTuple(expression, "si", &text, &linktype)) {
        Py_DECREF(expression);
        goto done;
    }
    Py_DECREF(expression);
    struct batch *batch = calloc(1, sizeof *batch);
    if (batch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    struct loop loop = {&lib, pcap, &table, batch, lib.file(pcap), on_batch, progress,
                        NULL, linktype, include_data, 0, 0, 0, 0, 24, 0.0, 0.0, 0, 0, NULL, 0};
    loop.pcapng = lib.major_version(pcap) == 1;
    loop.snapshot = (uint32_t)lib.snapshot(pcap);
    const char *read_error = NULL;
    loop.thread = PyEval_SaveThread();
    /* -1: every packet of the file; it returns at the end, on an error or a breakloop */
    int status = lib.dispatch(pcap, -1, on_packet, (unsigned char *)&loop);
    if (status == -1)
        read_error = lib.geterr(pcap);
    PyThreadState *thread = loop.thread;
    int failure = loop.failure == 4 ? 0 : loop.failure;
    int64_t packets = loop.packets, data_packets = loop.data_packets;
    uint64_t consumed = loop.consumed;
    double start = loop.start, end = loop.end;
    int copied = failure == 0 && include_data ? table_finish(&table) : 0;
    int error_number = copied < 0 ? errno : loop.error_number;
    PyEval_RestoreThread(thread);
    if (failure == 0 && copied < 0)
        failure = 2;
    if (failure == 0 && batch_flush(batch, on_batch, linktype) < 0)
        failure = 3;
    free(batch->bytes);
    free(batch);
    if (failure == 1) {
        PyErr_NoMemory();
        goto done;
    }
    if (failure == 2) {
        errno = error_number;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    if (failure == 3)
        goto done;
    if (failure == 5) {
        PyErr_Format(ScanError, "%s at byte %llu", loop.differs, (unsigned long long)loop.differs_at);
        goto done;
    }
    stopped = read_error == NULL ? Py_NewRef(Py_None)
                                 : Py_BuildValue("(sK)", read_error, (unsigned long long)consumed);
    if (stopped == NULL)
        goto done;
    PyObject *flows = flows_list(&table);
    if (flows == NULL)
        goto done;
    if (packets == 0)
        result = Py_BuildValue("(iLOOLNO)", linktype, (long long)0, Py_None, Py_None, (long long)0,
                               flows, stopped);
    else
        result = Py_BuildValue("(iLddLNO)", linktype, (long long)packets, start, end,
                               (long long)data_packets, flows, stopped);
done:
    Py_XDECREF(stopped);
    lib.close(pcap); /* and the file */
    free(buffer);
    table_free(&table);
    return result;
}

PyDoc_STRVAR(classify_doc,
"classify(linktype, data) -> None | 'other' | (src, dst, key)\n"
"\n"
"What the hot loop decides about one frame without Python: None (hand it to\n"
"analyzer.read.packet), 'other' (not GRE), or a GRE data packet's flow (address bytes, key).");

static PyObject *classify_py(PyObject *self, PyObject *args) {
    int linktype;
    Py_buffer buffer;
    if (!PyArg_ParseTuple(args, "iy*", &linktype, &buffer))
        return NULL;
    struct flow_key key;
    int kind = classify(linktype, buffer.buf, (size_t)buffer.len, &key, NULL);
    PyBuffer_Release(&buffer);
    if (kind == CLASS_DEFER)
        Py_RETURN_NONE;
    if (kind == CLASS_OTHER)
        return PyUnicode_FromString("other");
    int width = key.family == 4 ? 4 : 16;
    PyObject *value = key.has_key ? PyLong_FromUnsignedLong(key.key) : Py_NewRef(Py_None);
    if (value == NULL)
        return NULL;
    return Py_BuildValue("(y#y#N)", (const char *)key.src, (Py_ssize_t)width, (const char *)key.dst,
                         (Py_ssize_t)width, value);
}

PyDoc_STRVAR(decode_keepalive_doc,
"decode_keepalive(linktype, data) -> bytes | None\n"
"\n"
"The keepalive record (analyzer.read.fastpath.KEEPALIVE_RECORD, frame number and time 0)\n"
"the hot loop makes of a request or reply it decodes itself; None for any other frame.");

static PyObject *decode_keepalive_py(PyObject *self, PyObject *args) {
    int linktype;
    Py_buffer buffer;
    if (!PyArg_ParseTuple(args, "iy*", &linktype, &buffer))
        return NULL;
    struct flow_key key;
    struct keepalive record;
    memset(&record, 0, sizeof record);
    int kind = classify(linktype, buffer.buf, (size_t)buffer.len, &key, &record);
    PyBuffer_Release(&buffer);
    if (kind != CLASS_REQUEST && kind != CLASS_REPLY)
        Py_RETURN_NONE;
    record.kind = (uint8_t)kind;
    return PyBytes_FromStringAndSize((const char *)&record, (Py_ssize_t)sizeof record);
}

/* --- survey: what libpcap would read differently from analyzer.read.capture in a pcapng --- */

/* A forward-only walk over a file descriptor with pread and a 1 MiB buffer. */
struct walk {
    int fd;
    unsigned char *buffer;
    size_t start, end;    /* the bytes buffer[start:end] are read */
    uint64_t position;    /* file offset of buffer[start] */
    uint64_t read_at;     /* file offset of buffer[end] */
};

#define WALK_BUFFER (1 << 20)

/* Make `n` (<= WALK_BUFFER) bytes readable at the position; 0 at the end of the file. */
static int walk_need(struct walk *w, size_t n) {
    if (w->end - w->start >= n)
        return 1;
    memmove(w->buffer, w->buffer + w->start, w->end - w->start);
    w->end -= w->start;
    w->start = 0;
    while (w->end < n) {
        ssize_t got = pread(w->fd, w->buffer + w->end, WALK_BUFFER - w->end, (off_t)w->read_at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        w->end += (size_t)got;
        w->read_at += (uint64_t)got;
    }
    return 1;
}

static void walk_skip(struct walk *w, uint64_t n) {
    uint64_t have = w->end - w->start;
    if (n <= have) {
        w->start += (size_t)n;
    } else {
        w->read_at += n - have;
        w->start = w->end = 0;
    }
    w->position += n;
}

static uint32_t walk_u32(const unsigned char *p, int swapped) {
    uint32_t value;
    memcpy(&value, p, 4);
    return swapped ? __builtin_bswap32(value) : value;
}

#define SURVEY_MAX_INTERFACES 1024
#define SURVEY_MAX_IDB (1 << 16)

enum { SURVEY_SPB, SURVEY_INTERFACES, SURVEY_KINDS };
static const char *const survey_names[SURVEY_KINDS] = {"spb", "interfaces"};

struct survey {
    int64_t found[SURVEY_KINDS]; /* file offset of the first such record, or -1 */
    uint64_t idb_at[SURVEY_MAX_INTERFACES]; /* pcapng: where each IDB's body starts */
    uint32_t idb_length[SURVEY_MAX_INTERFACES];
    char idb_order[SURVEY_MAX_INTERFACES]; /* struct's byte-order character */
    size_t idbs;
};

/* pcapng: Simple Packet Blocks, and every Interface Description Block (libpcap's clock for
 * an interface described after the first packet is not checked when the file is opened). */
static void survey_pcapng(struct walk *w, struct survey *s) {
    int swapped = 0;
    while (walk_need(w, 12)) {
        const unsigned char *head = w->buffer + w->start;
        uint32_t type = walk_u32(head, 0);
        if (type == 0x0A0D0D0Au) {
            uint32_t order;
            memcpy(&order, head + 8, 4);
            if (order == 0x1A2B3C4Du)
                swapped = 0;
            else if (order == 0x4D3C2B1Au)
                swapped = 1;
            else
                return;
        } else if (swapped) {
            type = __builtin_bswap32(type);
        }
        uint32_t length = walk_u32(head + 4, swapped);
        if (length < 12 || length % 4 != 0)
            return; /* libpcap stops here */
        if (type == 3) {
            s->found[SURVEY_SPB] = (int64_t)w->position;
            return; /* reason enough to read the file with the pure-Python reader */
        }
        if (type == 1) {
            if (s->idbs == SURVEY_MAX_INTERFACES || length > SURVEY_MAX_IDB) {
                s->found[SURVEY_INTERFACES] = (int64_t)w->position;
                return;
            }
            const uint16_t one = 1;
            int little = *(const unsigned char *)&one != swapped;
            s->idb_at[s->idbs] = w->position + 8;
            s->idb_length[s->idbs] = length - 12;
            s->idb_order[s->idbs++] = little ? '<' : '>';
        }
        walk_skip(w, length);
    }
}

PyDoc_STRVAR(survey_doc,
"survey(fd) -> (found, interfaces)\n"
"\n"
"Walk the block headers of the pcapng file open on `fd` (read with pread from offset 0,\n"
"without the GIL) for what libpcap reads differently from analyzer.read.capture (a classic\n"
"pcap's differences show in scan). `found` maps 'spb' (a Simple Packet Block) and\n"
"'interfaces' (too many or too large Interface Description Blocks to list) to the file\n"
"offset of the first one (the walk ends there). `interfaces`: every IDB before it as\n"
"(struct's byte-order character, body after the block length).");

/* The bodies of the IDBs the walk found, as a list of (byte order, body); NULL on error. */
static PyObject *survey_interfaces(int fd, const struct survey *s) {
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < s->idbs; i++) {
        PyObject *body = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)s->idb_length[i]);
        if (body == NULL) {
            Py_CLEAR(list);
            break;
        }
        ssize_t got = pread(fd, PyBytes_AS_STRING(body), s->idb_length[i], (off_t)s->idb_at[i]);
        if (got != (ssize_t)s->idb_length[i]) {
            Py_DECREF(body);
            break; /* the file shrank: the IDBs read so far */
        }
        PyObject *item = Py_BuildValue("(C N)", s->idb_order[i], body);
        if (item == NULL || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

static PyObject *survey(PyObject *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd))
        return NULL;
    struct survey *s = calloc(1, sizeof *s);
    struct walk w = {fd, malloc(WALK_BUFFER), 0, 0, 0, 0};
    if (s == NULL || w.buffer == NULL) {
        free(s);
        free(w.buffer);
        return PyErr_NoMemory();
    }
    for (int kind = 0; kind < SURVEY_KINDS; kind++)
        s->found[kind] = -1;
    Py_BEGIN_ALLOW_THREADS /* call it from a thread of its own to overlap libpcap's pass */
    if (walk_need(&w, 4)) {
        uint32_t magic;
        memcpy(&magic, w.buffer, 4);
        if (magic == 0x0A0D0D0Au)
            survey_pcapng(&w, s);
    }
    Py_END_ALLOW_THREADS
    free(w.buffer);
    PyObject *found = PyDict_New();
    for (int kind = 0; found != NULL && kind < SURVEY_KINDS; kind++) {
        if (s->found[kind] < 0)
            continue;
        PyObject *offset = PyLong_FromLongLong((long long)s->found[kind]);
        if (offset == NULL || PyDict_SetItemString(found, survey_names[kind], offset) < 0)
            Py_CLEAR(found);
        Py_XDECREF(offset);
    }
    PyObject *interfaces = found == NULL ? NULL : survey_interfaces(fd, s);
    free(s);
    if (interfaces == NULL) {
        Py_XDECREF(found);
        return NULL;
    }
    return Py_BuildValue("(NN)", found, interfaces);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {"decode_keepalive", decode_keepalive_py, METH_VARARGS, decode_keepalive_doc},
    {"classify", classify_py, METH_VARARGS, classify_doc},
    {"survey", survey, METH_VARARGS, survey_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "analyzer.read._fastscan",
    "The fast path's hot loop: libpcap + BPF reading, GRE data counted in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastscan(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    ScanError = PyErr_NewException("analyzer.read._fastscan.ScanError", PyExc_Exception, NULL);
    if (ScanError == NULL || PyModule_AddObjectRef(m, "ScanError", ScanError) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
