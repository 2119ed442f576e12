"""The parts of scripts/check-delegation: a small DNS client (wire), DNSSEC
digests and signature checks (dnssec), and the checks themselves (checks).
Python 3 standard library only.
"""
