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

One addition for the local demo: with `ZAE_MOTO_CLOCK_FILE` set, a stream
record's `ApproximateCreationDateTime` is moto's clock plus the number of
seconds in that file (read at every record; none, or no file, is 0). The demo
writes a negative offset while its client produces traffic for earlier months,
so that the snapshot windows, which follow that timestamp, hold a history.
Without the variable moto's clock is unchanged.
"""

import datetime
import os
import sys
import threading

from moto.dynamodb.models import table as _table
from moto.dynamodb.models.table import StreamShard
from moto.server import main

_lock = threading.Lock()
_add = StreamShard.add


def _add_numbered_once(self, *args, **kwargs):
    with _lock:
        return _add(self, *args, **kwargs)


StreamShard.add = _add_numbered_once

_clock_file = os.environ.get("ZAE_MOTO_CLOCK_FILE")
_utcnow = _table.utcnow


def _stream_clock():
    try:
        with open(_clock_file, encoding="ascii") as f:
            offset = float(f.read().strip() or 0)
    except (OSError, ValueError):
        offset = 0.0
    return _utcnow() + datetime.timedelta(seconds=offset)


if _clock_file:
    _table.utcnow = _stream_clock

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
