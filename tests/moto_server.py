"""The pinned moto server with one fix, started by the wrapper that
tests/env.sh (and tests/local/demo.sh) writes next to the venv's
`moto_server`: `zae-moto-server`, which the tests use as $ZAE_MOTO_SERVER.

moto's server is threaded, and its DynamoDB stream numbers a record
`len(items) + start` before appending it, without a lock: two writes to one
table at the same moment can get the same SequenceNumber. A stream read
`AFTER_SEQUENCE_NUMBER` then maps back onto records it already returned, and
a reader at the stream's end is handed the same records forever (never an
empty page). DynamoDB's sequence numbers are unique and increasing per
shard, so the fix numbers and appends under one lock (docs/testing.md#moto).
Arguments are moto_server's own (`-H 127.0.0.1 -p PORT`).
"""

import sys
import threading

from moto.dynamodb.models.table import StreamShard
from moto.server import main

_lock = threading.Lock()
_add = StreamShard.add


def _add_numbered_once(self, *args, **kwargs):
    with _lock:
        return _add(self, *args, **kwargs)


StreamShard.add = _add_numbered_once

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
