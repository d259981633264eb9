"""Checks the NATS permissions of the project's configuration with an official NATS client
(nats-py), as a person with the debug user would meet them: a client without a user is
refused; the debug user cannot publish into the pipeline (the server reports a permissions
violation) but may ask the services, and a running hasher answers its `$SRV.PING`.
Run by crates/e2e/tests/nats_permissions.rs.

Usage: nats_permissions.py NATS_URL, with NATS_USER and NATS_PASSWORD (the debug user's) set.
Prints one line per check passed; exits 1 on the first that fails.
"""

import asyncio
import json
import os
import sys

import nats
from nats.errors import Error as NatsError


async def main(url):
    try:
        anonymous = await nats.connect(
            url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5
        )
    except NatsError as error:
        if "authorization violation" not in str(error).lower():
            sys.exit(f"anonymous: refused, but not for authorization: {error!r}")
        print("anonymous refused")
    else:
        await anonymous.close()
        sys.exit("anonymous: let in")

    refusals = asyncio.Queue()

    async def on_error(error):
        await refusals.put(str(error))

    debug = await nats.connect(
        url,
        user=os.environ["NATS_USER"],
        password=os.environ["NATS_PASSWORD"],
        error_cb=on_error,
        inbox_prefix="_INBOX.debug",
    )
    await debug.publish("chocominer.digests", b"forged")
    await debug.flush()
    error = await asyncio.wait_for(refusals.get(), timeout=10)
    if "permissions violation" not in error.lower() or "chocominer.digests" not in error:
        sys.exit(f"debug publishing digests: {error}")
    print("debug refused on chocominer.digests")

    answer = await debug.request("$SRV.PING.hasher", b"", timeout=10)
    if json.loads(answer.data).get("name") != "hasher":
        sys.exit(f"$SRV.PING.hasher: {answer.data!r}")
    print("hasher answers PING")
    await debug.close()

    # With the library's default inboxes (`_INBOX.<random>`) debug would read every
    # acknowledgement: the server refuses that subscription.
    default_inbox = await nats.connect(
        url,
        user=os.environ["NATS_USER"],
        password=os.environ["NATS_PASSWORD"],
        error_cb=on_error,
    )
    try:
        await default_inbox.request("$SRV.PING.hasher", b"", timeout=3)
        sys.exit("debug got an answer on a default _INBOX. inbox")
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        pass
    error = await asyncio.wait_for(refusals.get(), timeout=10)
    if "permissions violation" not in error.lower() or "_inbox." not in error.lower():
        sys.exit(f"debug subscribing a default inbox: {error}")
    print("debug refused on a default _INBOX. inbox")
    await default_inbox.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
