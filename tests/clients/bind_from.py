"""Simple binds from a chosen source address, one connection each (python3-ldap3).

usage: bind_from.py SOURCE_ADDRESS PORT DN PASSWORD [COUNT]
Prints the LDAP result code of each bind on a line of its own.
"""
import sys

import ldap3


def main():
    source, port, dn, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    count = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    server = ldap3.Server("127.0.0.1", port=port, connect_timeout=30)
    for _ in range(count):
        conn = ldap3.Connection(server, user=dn, password=password, source_address=source,
                                receive_timeout=120)
        conn.open()
        conn.bind()
        print(conn.result["result"], flush=True)
        conn.unbind()


if __name__ == "__main__":
    main()
