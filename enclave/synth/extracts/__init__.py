"""The six source extracts, one module each, generated per chunk of people."""
