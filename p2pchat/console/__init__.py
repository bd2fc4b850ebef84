"""The full-screen urwid console (not built yet: --ui console falls back to the line face)."""
