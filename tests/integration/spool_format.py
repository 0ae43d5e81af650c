"""Spool files written the way tern's writers write them (tern-queue(8),
"Message files"), for tests that need a spool made by other code: TERN1 as
tern-queue wrote it before the message moved to mess/ID (the upgrade), and
TERN2 whole or torn as a crash can leave it."""
import os

_POLY = 0x82F63B78
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli), as lib/crc32c.h: crc32c(b"123456789") == 0xE3069283."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def envelope_block(sender, rcpts, queued):
    text = "time %d\nfrom %s\n" % (queued, sender)
    text += "".join("rcpt %s\n" % r for r in rcpts)
    return text.encode()


def tern1_file(message, sender, rcpts, queued):
    """The bytes of a TERN1 file: message, envelope block, 32-octet footer."""
    block = envelope_block(sender, rcpts, queued)
    return message + block + b"TERN1 %016x %08x\n" % (len(message), len(block))


def tern2_envelope(message, sender, rcpts, queued):
    """The bytes of a TERN2 envelope file for MESSAGE (which goes in mess/ID)."""
    block = envelope_block(sender, rcpts, queued)
    head = b"TERN2 %016x %08x %08x " % (len(message), len(block), crc32c(message))
    return block + head + b"%08x\n" % crc32c(block + head)


def write_file(path, data, owner=None):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    if owner is not None:
        os.chown(path, owner[0], owner[1])


def write_tern1(spool, folder, qid, message, sender, rcpts, queued, owner=None):
    write_file(os.path.join(spool, folder, qid), tern1_file(message, sender, rcpts, queued),
               owner)


def write_tern2(spool, folder, qid, message, sender, rcpts, queued, owner=None):
    write_file(os.path.join(spool, "mess", qid), message, owner)
    write_file(os.path.join(spool, folder, qid),
               tern2_envelope(message, sender, rcpts, queued), owner)


def state_file(records):
    """state/ID text; RECORDS are (state, next_try, attempts, orcpt, addr, error)."""
    text = "tern-state 1\n"
    for state, next_try, attempts, orcpt, addr, error in records:
        text += "%s\t%d\t%d\t0\t-\t%s\t%s\t%s\n" % (state, next_try, attempts, orcpt, addr,
                                                    error)
    return text.encode()
