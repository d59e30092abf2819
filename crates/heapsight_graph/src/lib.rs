//! heapsight_graph
