"""Every bound the protocol layer enforces, in one place, each with the reason for its size."""

# Request line + headers. nginx, HAProxy and h11 all sit near 16 KiB; LLM SDK requests use
# about 1 KiB, so anything near this is abuse or a bug.
MAX_HEAD_BYTES = 16 * 1024
# Envoy's max_headers_count; HAProxy's tune.http.maxhdr is 101.
MAX_HEADER_FIELDS = 100
# Write-buffer marks for end-to-end backpressure: above HIGH the other side stops reading,
# below LOW it resumes. 64 KiB keeps a few socket buffers' worth in flight per direction.
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024
# Bytes read per data_received are decided by the loop; this bounds what we hold per
# connection while an exchange is not yet ready to take body bytes (upstream connecting).
MAX_PENDING_BODY = HIGH_WATER
# A connection reads at most about this much per loop turn (one read of uvloop's), then
# waits for the next turn, so every client gets its share of each turn.
READ_PER_TURN = 256 * 1024
