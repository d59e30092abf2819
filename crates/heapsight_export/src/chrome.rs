//! Chrome DevTools `.heapsnapshot` writer (placeholder, filled in next).
