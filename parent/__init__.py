"""The untrusted host runtime: proxy, launcher, sealed-blob store. Learns nothing, forges nothing."""
