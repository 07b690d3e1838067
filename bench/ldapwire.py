"""The LDAP requests the bench clients send, encoded as BER by hand, so that they need nothing
beyond python3 (bench/searchload.py, bench/ldapconns.py)."""


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
