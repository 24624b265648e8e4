"""Thin triggers: Functions types in → one service call → Functions types out. One blueprint per file."""
