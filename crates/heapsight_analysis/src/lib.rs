//! heapsight_analysis
