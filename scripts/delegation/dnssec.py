"""DNSSEC for the checker: key tags, DS digests, and RRSIG validation of an
RRset with a DNSKEY (RFC 4034), for RSA/SHA-256 and SHA-512 (8, 10), ECDSA
P-256/SHA-256 and P-384/SHA-384 (13, 14) and Ed25519 (15), in plain Python
(big integers; slow, but a check verifies a few dozen signatures at most).
Other algorithms are reported as not checked.
"""

import hashlib
import struct

from .wire import name_wire

DIGESTS = {1: hashlib.sha1, 2: hashlib.sha256, 4: hashlib.sha384}
ALGORITHMS = {8: "RSASHA256", 10: "RSASHA512", 13: "ECDSAP256SHA256", 14: "ECDSAP384SHA384", 15: "ED25519"}


def key_tag(dnskey_rdata):
    """RFC 4034 appendix B."""
    acc = 0
    for i, b in enumerate(dnskey_rdata):
        acc += b << 8 if i % 2 == 0 else b
    acc += acc >> 16 & 0xFFFF
    return acc & 0xFFFF


def ds_digest(owner, dnskey_rdata, digest_type):
    """The DS digest of a DNSKEY (RFC 4034 5.1.4), or None for an unknown digest type."""
    h = DIGESTS.get(digest_type)
    return h(name_wire(owner) + dnskey_rdata).digest() if h else None


def signed_data(rrsig, rrset):
    """What an RRSIG signs: its RDATA up to the signature, then the RRset in
    canonical form and order with the original TTL (RFC 4034 3.1.8.1, 6.2)."""
    sig = rrsig.data
    owner = rrset[0].name
    labels = [lbl for lbl in owner.rstrip(".").split(".") if lbl]
    if sig["labels"] < len(labels):  # expanded from a wildcard
        owner = "*." + ".".join(labels[len(labels) - sig["labels"]:]) + "."
    head = name_wire(owner) + struct.pack(">HHI", rrset[0].type, 1, sig["original_ttl"])
    rdatas = sorted({rr.canon for rr in rrset})
    return sig["signed_part"] + b"".join(head + struct.pack(">H", len(r)) + r for r in rdatas)


# ---------------------------------------------------------------- RSA (RFC 3110, 5702)

DIGEST_INFO = {
    8: (hashlib.sha256, bytes.fromhex("3031300d060960864801650304020105000420")),
    10: (hashlib.sha512, bytes.fromhex("3051300d060960864801650304020305000440")),
}


def rsa_verify(alg, key, data, signature):
    if key[0] == 0:
        elen, key = struct.unpack(">H", key[1:3])[0], key[3:]
    else:
        elen, key = key[0], key[1:]
    e, n = int.from_bytes(key[:elen], "big"), int.from_bytes(key[elen:], "big")
    size = (n.bit_length() + 7) // 8
    if not n or len(signature) != size:
        return False
    h, prefix = DIGEST_INFO[alg]
    digest = prefix + h(data).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest) - 3) + b"\x00" + digest
    return pow(int.from_bytes(signature, "big"), e, n).to_bytes(size, "big") == expected


# ---------------------------------------------------------------- ECDSA (RFC 6605)

CURVES = {
    13: dict(p=2**256 - 2**224 + 2**192 + 2**96 - 1, a=-3,
             b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
             n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
             g=(0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
                0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5),
             size=32, hash=hashlib.sha256),
    14: dict(p=2**384 - 2**128 - 2**96 + 2**32 - 1, a=-3,
             b=0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
             n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
             g=(0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
                0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F),
             size=48, hash=hashlib.sha384),
}


def ec_add(c, P, Q):
    p = c["p"]
    if P is None:
        return Q
    if Q is None:
        return P
    if P[0] == Q[0]:
        if (P[1] + Q[1]) % p == 0:
            return None
        m = (3 * P[0] * P[0] + c["a"]) * pow(2 * P[1], -1, p) % p
    else:
        m = (Q[1] - P[1]) * pow(Q[0] - P[0], -1, p) % p
    x = (m * m - P[0] - Q[0]) % p
    return x, (m * (P[0] - x) - P[1]) % p


def ec_mul(c, k, P):
    R = None
    while k:
        if k & 1:
            R = ec_add(c, R, P)
        P = ec_add(c, P, P)
        k >>= 1
    return R


def ecdsa_verify(alg, key, data, signature):
    c = CURVES[alg]
    size, p, n = c["size"], c["p"], c["n"]
    if len(key) != 2 * size or len(signature) != 2 * size:
        return False
    Q = (int.from_bytes(key[:size], "big"), int.from_bytes(key[size:], "big"))
    if (Q[1] ** 2 - Q[0] ** 3 - c["a"] * Q[0] - c["b"]) % p:
        return False  # not on the curve
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    if not (0 < r < n and 0 < s < n):
        return False
    e = int.from_bytes(c["hash"](data).digest(), "big")
    w = pow(s, -1, n)
    X = ec_add(c, ec_mul(c, e * w % n, c["g"]), ec_mul(c, r * w % n, Q))
    return X is not None and X[0] % n == r


# ---------------------------------------------------------------- Ed25519 (RFC 8032 5.1.7, RFC 8080)

ED_P = 2**255 - 19
ED_L = 2**252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, -1, ED_P) % ED_P
ED_I = pow(2, (ED_P - 1) // 4, ED_P)  # a square root of -1


def ed_add(P, Q):
    # extended coordinates (X, Y, Z, T)
    A = (P[1] - P[0]) * (Q[1] - Q[0]) % ED_P
    B = (P[1] + P[0]) * (Q[1] + Q[0]) % ED_P
    C = 2 * P[3] * Q[3] * ED_D % ED_P
    D = 2 * P[2] * Q[2] % ED_P
    E, F, G, H = B - A, D - C, D + C, B + A
    return E * F % ED_P, G * H % ED_P, F * G % ED_P, E * H % ED_P


def ed_mul(k, P):
    R = (0, 1, 1, 0)
    while k:
        if k & 1:
            R = ed_add(R, P)
        P = ed_add(P, P)
        k >>= 1
    return R


def ed_decode(s):
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & (2**255 - 1)
    if y >= ED_P:
        return None
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, -1, ED_P) % ED_P
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P:
        x = x * ED_I % ED_P
    if (x * x - x2) % ED_P or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = ED_P - x
    return x, y, 1, x * y % ED_P


def ed_equal(P, Q):
    return (P[0] * Q[2] - Q[0] * P[2]) % ED_P == 0 and (P[1] * Q[2] - Q[1] * P[2]) % ED_P == 0


ED_G = ed_decode(bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666"))


def ed25519_verify(_alg, key, data, signature):
    if len(key) != 32 or len(signature) != 64:
        return False
    A, R = ed_decode(key), ed_decode(signature[:32])
    S = int.from_bytes(signature[32:], "little")
    if A is None or R is None or S >= ED_L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + key + data).digest(), "little") % ED_L
    return ed_equal(ed_mul(S, ED_G), ed_add(R, ed_mul(h, A)))


VERIFY = {8: rsa_verify, 10: rsa_verify, 13: ecdsa_verify, 14: ecdsa_verify, 15: ed25519_verify}


def verify(rrsig, rrset, dnskey):
    """True or False; None when the algorithm is not one this checker knows."""
    alg = rrsig.data["alg"]
    if alg not in VERIFY or dnskey.data["alg"] != alg:
        return None
    return VERIFY[alg](alg, dnskey.data["key"], signed_data(rrsig, rrset), rrsig.data["signature"])
