"""Reports of a bench run: the JSON document (`schema`), the terminal summary (`text`), the
self-contained HTML page (`html`) and the comparison with a baseline (`baseline`)."""
