//! heapsight_report
