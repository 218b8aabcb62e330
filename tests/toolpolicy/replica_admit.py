"""A gateway replica for the cross-process limit test: admits N concurrent calls, prints how many passed.

It prints `ready` once started, then waits for a line on stdin, so the test can fire every replica together
without the processes sharing a clock.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from toolpolicy.errors import LimitExceeded
from toolpolicy.governor import Call
from toolpolicy.runtime import Governance
from toolpolicy.settings import GatewaySettings
from toolpolicy.types import ModelTarget


async def main(config: dict[str, object], calls: int) -> None:
    governance = Governance(GatewaySettings.model_validate(config))
    await governance.start()
    try:
        who = await governance.keys.resolve("isk-alpha")
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the go signal: every replica fires together

        async def one() -> bool:
            try:
                admission = await governance.governor.admit(Call(uuid.uuid4().hex, who, ModelTarget.parse("mock/free")))
            except LimitExceeded:
                return False
            await admission.release()
            return True

        print(sum(await asyncio.gather(*(one() for _ in range(calls)))))
    finally:
        await governance.stop()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]), int(sys.argv[2])))
