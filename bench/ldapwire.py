"""The LDAP requests the bench clients send, encoded as BER by hand, and a connection that reads
the answers, so that they need nothing beyond python3 (bench/searchload.py, bench/ldapconns.py,
bench/replag.py)."""

import socket


def ber_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + ber_len(len(content)) + content


def ber_int(tag, v):
    return tlv(tag, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def message(msgid, op):
    return tlv(0x30, ber_int(0x02, msgid) + op)


def bind_request(msgid, dn, password):
    op = tlv(0x60, ber_int(0x02, 3) + tlv(0x04, dn.encode()) + tlv(0x80, password.encode()))
    return message(msgid, op)


def search_request(msgid, base, attr, value, attrs, scope=2):
    filt = tlv(0xA3, tlv(0x04, attr.encode()) + tlv(0x04, value.encode()))
    op = tlv(
        0x63,
        tlv(0x04, base.encode())
        + ber_int(0x0A, scope)  # 0 base, 1 one level, 2 subtree
        + ber_int(0x0A, 0)  # never deref
        + ber_int(0x02, 0)  # size limit
        + ber_int(0x02, 0)  # time limit
        + tlv(0x01, b"\x00")  # typesOnly false
        + filt
        + tlv(0x30, b"".join(tlv(0x04, a.encode()) for a in attrs)),
    )
    return message(msgid, op)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def read_msg(self):
        """One LDAP message: (op tag, op content)."""
        while True:
            if len(self.buf) >= 2:
                n = self.buf[1]
                hdr = 2
                if n & 0x80:
                    k = n & 0x7F
                    if len(self.buf) >= 2 + k:
                        n = int.from_bytes(self.buf[2 : 2 + k], "big")
                        hdr = 2 + k
                    else:
                        n = None
                if n is not None and len(self.buf) >= hdr + n:
                    body = self.buf[hdr : hdr + n]
                    self.buf = self.buf[hdr + n :]
                    # body: INTEGER msgid, then the op
                    i = 2 + body[1]
                    tag = body[i]
                    ln = body[i + 1]
                    j = i + 2
                    if ln & 0x80:
                        k = ln & 0x7F
                        ln = int.from_bytes(body[j : j + k], "big")
                        j += k
                    return tag, body[j : j + ln]
            chunk = self.s.recv(65536)
            if not chunk:
                raise SystemExit("server closed the connection")
            self.buf += chunk


def result_code(content):
    # ENUMERATED resultCode is first
    return content[2] if content[1] == 1 else int.from_bytes(content[2 : 2 + content[1]], "big")


def modify_replace(msgid, dn, attr, value):
    """A modify request replacing `attr` of `dn` with one value."""
    change = tlv(0x30, ber_int(0x0A, 2) + tlv(0x30, tlv(0x04, attr.encode()) + tlv(0x31, tlv(0x04, value.encode()))))
    return message(msgid, tlv(0x66, tlv(0x04, dn.encode()) + tlv(0x30, change)))
