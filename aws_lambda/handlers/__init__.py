"""Lambda entry points: parse, call one logic function, return."""
