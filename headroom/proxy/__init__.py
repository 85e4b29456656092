"""One exchange at a time: routing, header rules, streaming vs buffering, local endpoints."""
