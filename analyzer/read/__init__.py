"""Stage 1, read: capture files and interfaces in, typed frames and decoded packets out.

The only stage that touches bytes: pcap/pcapng/gzip readers, the dpkt decoder
(:mod:`analyzer.read.packet`, the one module that imports dpkt), the BPF keepalive
filters, the libpcap fast path with its C loop, and live capture.
"""
