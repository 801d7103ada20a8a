"""`perfkit assets DIR`: raw, gzip and brotli sizes of static files, budgets per glob, growth alerts."""
