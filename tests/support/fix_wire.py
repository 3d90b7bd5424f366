"""FIX wire samples shared by the codec's and the fast decoder's tests.

The literal messages ('|' stands for SOH) carry their BodyLength and CheckSum and are
checked against QuickFIX's own parser in test_fix_samples; `frame` wraps a body in a
correct BodyLength and CheckSum; `mutations` flips, cuts, inserts and repeats bytes.
pytest puts this folder on sys.path (``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

from hypothesis import strategies as st

from fix_spec import fix44
from fix_spec.fix44.groups import MDIncGrpNoMDEntries
from fix_spec.fix44.messages import MarketDataIncrementalRefresh

W_AAPL = (
    "8=FIX.4.4|9=703|35=W|49=VENUE|56=MDFEED|34=2|52=20261122-14:30:00.125|262=req-1|55=AAPL|"
    "268=20|269=0|270=189.50|271=100|290=1|269=0|270=189.49|271=200|290=2|269=0|270=189.48|27"
    "1=300|290=3|269=0|270=189.47|271=400|290=4|269=0|270=189.46|271=500|290=5|269=0|270=189."
    "45|271=600|290=6|269=0|270=189.44|271=700|290=7|269=0|270=189.43|271=800|290=8|269=0|270"
    "=189.42|271=900|290=9|269=0|270=189.41|271=1000|290=10|269=1|270=189.52|271=100|290=1|26"
    "9=1|270=189.53|271=200|290=2|269=1|270=189.54|271=300|290=3|269=1|270=189.55|271=400|290"
    "=4|269=1|270=189.56|271=500|290=5|269=1|270=189.57|271=600|290=6|269=1|270=189.58|271=70"
    "0|290=7|269=1|270=189.59|271=800|290=8|269=1|270=189.60|271=900|290=9|269=1|270=189.61|2"
    "71=1000|290=10|10=143|"
)
W_MSFT = (
    "8=FIX.4.4|9=703|35=W|49=VENUE|56=MDFEED|34=3|52=20261122-14:30:00.125|262=req-1|55=MSFT|"
    "268=20|269=0|270=415.10|271=100|290=1|269=0|270=415.09|271=200|290=2|269=0|270=415.08|27"
    "1=300|290=3|269=0|270=415.07|271=400|290=4|269=0|270=415.06|271=500|290=5|269=0|270=415."
    "05|271=600|290=6|269=0|270=415.04|271=700|290=7|269=0|270=415.03|271=800|290=8|269=0|270"
    "=415.02|271=900|290=9|269=0|270=415.01|271=1000|290=10|269=1|270=415.13|271=100|290=1|26"
    "9=1|270=415.14|271=200|290=2|269=1|270=415.15|271=300|290=3|269=1|270=415.16|271=400|290"
    "=4|269=1|270=415.17|271=500|290=5|269=1|270=415.18|271=600|290=6|269=1|270=415.19|271=70"
    "0|290=7|269=1|270=415.20|271=800|290=8|269=1|270=415.21|271=900|290=9|269=1|270=415.22|2"
    "71=1000|290=10|10=189|"
)
X_MIXED = (
    "8=FIX.4.4|9=307|35=X|49=VENUE|56=MDFEED|34=4|52=20261122-14:30:00.250|262=req-1|268=5|27"
    "9=0|269=0|55=AAPL|270=189.49|271=300|290=1|279=1|269=1|55=AAPL|270=189.52|271=250|290=1|"
    "279=2|269=0|55=MSFT|270=415.01|271=1000|290=10|279=0|269=2|55=AAPL|270=189.51|271=75|273"
    "=14:30:00.249|279=1|269=0|55=MSFT|270=415.11|271=600|290=1|10=129|"
)
Y_REJECT = (
    "8=FIX.4.4|9=94|35=Y|49=VENUE|56=MDFEED|34=5|52=20261122-14:30:00.300|262=req-2|281=0|58="
    "Unknown symbol: ZZZZ|10=180|"
)


def wire(text: str) -> bytes:
    return text.replace("|", "\x01").encode()


X_BODY = (
    "35=X|49=VENUE|56=MDFEED|34=4|52=20261122-14:30:00.250|262=req-1|268=2|"
    "279=0|269=0|55=AAPL|270=189.49|271=300|"
    "279=1|269=1|55=AAPL|270=189.52|271=250|"
)


def frame(body: str | bytes, begin: bytes = b"FIX.4.4") -> bytes:
    raw = body.replace("|", "\x01").encode("latin-1") if isinstance(body, str) else body
    head = b"8=%s\x019=%d\x01" % (begin, len(raw))
    return head + raw + b"10=%03d\x01" % (sum(head + raw) % 256)


VALID = frame(X_BODY)


@st.composite
def mutations(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "dup"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] = draw(
                st.sampled_from([0x01, ord("="), ord("0"), ord("9"), ord("-"), 0xFF, ord("A")])
            )
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [b"\x01", b"=", b"268=1\x01", b"279=0\x01", b"9999=x\x01", b"55=\x01"]
                )
            )
        else:
            end = min(len(data), at + draw(st.integers(1, 40)))
            data[at:at] = data[at:end]
    return bytes(data)


def decode_entries(text: str) -> list[MDIncGrpNoMDEntries]:
    """Wrap entry text (SOH-separated, as the simulated venue writes it) in an X and decode
    it with the FIX 4.4 codec."""
    count = text.count("\x01279=") + (1 if text.startswith("279=") else 0)
    body = (
        "35=X\x0149=VENUE\x0156=MDFEED\x0134=1\x0152=20260101-00:00:00.000\x01"
        f"262=r\x01268={count}\x01{text}"
    ).encode()
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    message = fix44.decode(head + body + b"10=%03d\x01" % (sum(head + body) % 256))
    assert isinstance(message, MarketDataIncrementalRefresh)
    return list(message.no_md_entries)
