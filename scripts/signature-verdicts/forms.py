"""Stripe-Signature header forms, and the verdict of the official stripe-python on each.

Writes JSON to stdout: the secret, payload and clock every form is judged with, the version of
stripe-python, and one entry per form with its header and python's verdict. node-verdicts.cjs
then adds stripe-node's. Run through scripts/signature-verdicts.sh, which installs both
libraries (pinned) into target/.
"""

import hashlib
import hmac
import json
import sys
from unittest import mock

import stripe

SECRET = "whsec_verdicts_current"
OTHER = "whsec_verdicts_other"
NOW = 1_700_000_000
EARLIER = NOW - 60
TOLERANCE = 300
PAYLOAD = '{"id":"evt_verdicts","object":"event","type":"payment_intent.succeeded"}'


def sign(t, secret=SECRET):
    message = f"{t}.{PAYLOAD}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


SIG = sign(NOW)
WRONG = sign(NOW, OTHER)

# (name, header). Every form is judged at NOW: tolerance is not what this table is about,
# apart from the last three rows.
FORMS = [
    ("canonical", f"t={NOW},v1={SIG}"),
    ("signed under another secret", f"t={NOW},v1={WRONG}"),
    ("rolling secrets: a wrong v1 then ours", f"t={NOW},v1={WRONG},v1={SIG}"),
    ("v1 before t", f"v1={SIG},t={NOW}"),
    ("v0 and unknown schemes around ours", f"t={NOW},v0={WRONG},v1={SIG},v2=unknown,foo=bar"),
    ("only a v0", f"t={NOW},v0={SIG}"),
    ("no v1", f"t={NOW}"),
    ("no t", f"v1={SIG}"),
    ("empty header", ""),
    ("space before the v1 key", f"t={NOW}, v1={SIG}"),
    ("space before a wrong v1, ours unspaced", f"t={NOW}, v1={WRONG},v1={SIG}"),
    ("space before our v1, a wrong one unspaced", f"t={NOW},v1={WRONG}, v1={SIG}"),
    ("space before the t key", f" t={NOW},v1={SIG}"),
    ("tab before the v1 key", f"t={NOW},\tv1={SIG}"),
    ("space between v1 and =", f"t={NOW},v1 ={SIG}"),
    ("space before the v1 value", f"t={NOW},v1= {SIG}"),
    ("space after the v1 value", f"t={NOW},v1={SIG} "),
    ("space after the t value", f"t={NOW} ,v1={SIG}"),
    ("space before the t value", f"t= {NOW},v1={SIG}"),
    ("an empty item", f"t={NOW},,v1={SIG}"),
    ("a trailing comma", f"t={NOW},v1={SIG},"),
    ("a leading comma", f",t={NOW},v1={SIG}"),
    ("an item without =", f"t={NOW},junk,v1={SIG}"),
    ("a bare t item", f"t={NOW},t,v1={SIG}"),
    ("a bare v1 item", f"t={NOW},v1,v1={SIG}"),
    ("an empty v1 before ours", f"t={NOW},v1=,v1={SIG}"),
    ("a non-hex v1 before ours", f"t={NOW},v1=not-a-signature,v1={SIG}"),
    ("only a non-hex v1", f"t={NOW},v1=not-a-signature"),
    ("upper-case hex", f"t={NOW},v1={SIG.upper()}"),
    ("upper-case hex before ours", f"t={NOW},v1={SIG.upper()},v1={SIG}"),
    ("a truncated v1", f"t={NOW},v1={SIG[:63]}"),
    ("a v1 with one digit too many", f"t={NOW},v1={SIG}0"),
    ("a v1 followed by =junk", f"t={NOW},v1={SIG}=junk"),
    ("a t followed by =junk", f"t={NOW}=junk,v1={SIG}"),
    ("upper-case T key", f"T={NOW},v1={SIG}"),
    ("upper-case V1 key", f"t={NOW},V1={SIG}"),
    ("semicolons instead of commas", f"t={NOW};v1={SIG}"),
    ("t repeated with the same value", f"t={NOW},t={NOW},v1={SIG}"),
    ("t repeated, the first one signed", f"t={NOW},t={EARLIER},v1={SIG}"),
    ("t repeated, the last one signed", f"t={EARLIER},t={NOW},v1={SIG}"),
    ("t repeated, each one signed", f"t={EARLIER},t={NOW},v1={sign(EARLIER)},v1={SIG}"),
    ("a t that is not a number between two good ones", f"t={NOW},t=soon,t={NOW},v1={SIG}"),
    ("a t that is not a number", f"t=soon,v1={SIG}"),
    ("a t with a plus sign", f"t=+{NOW},v1={SIG}"),
    ("a t with a leading zero", f"t=0{NOW},v1={SIG}"),
    ("a t with a fraction", f"t={NOW}.5,v1={SIG}"),
    ("a t with digit separators", f"t=1_700_000_000,v1={SIG}"),
    ("a t with letters after it", f"t={NOW}abc,v1={SIG}"),
    ("a non-ASCII item we ignore", f"t={NOW},v1={SIG},note=caf\u00e9"),
    ("a non-ASCII v1 before ours", f"t={NOW},v1=\u00e9{SIG[1:]},v1={SIG}"),
    ("signed at the edge of the tolerance", f"t={NOW - TOLERANCE},v1={sign(NOW - TOLERANCE)}"),
    ("signed just outside the tolerance", f"t={NOW - TOLERANCE - 1},v1={sign(NOW - TOLERANCE - 1)}"),
    ("t = -1, signed", f"t=-1,v1={sign(-1)}"),
]


def verdict(header):
    with mock.patch("time.time", return_value=NOW):
        try:
            stripe.WebhookSignature.verify_header(PAYLOAD, header, SECRET, tolerance=TOLERANCE)
        except Exception as error:  # every exception is a refusal, whatever its class
            first_line = str(error).splitlines()[0] if str(error) else ""
            return {"accepted": False, "error": f"{type(error).__name__}: {first_line}"}
    return {"accepted": True}


def main():
    forms = [{"name": name, "header": header, "python": verdict(header)} for name, header in FORMS]
    json.dump(
        {
            "secret": SECRET,
            "payload": PAYLOAD,
            "now": NOW,
            "tolerance": TOLERANCE,
            "python_stripe": stripe.VERSION,
            "forms": forms,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
