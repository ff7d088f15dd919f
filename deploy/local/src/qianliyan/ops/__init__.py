"""Tools for the people who run Qianliyan: one CLI over the stack, lag, dead letters, checks."""
