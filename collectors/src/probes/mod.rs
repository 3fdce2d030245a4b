//! SDK status probes (commands) and reachability probes (TCP, UDP) with deadlines.
