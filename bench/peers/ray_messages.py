"""Ray peer of the twister2 messages bench: N one-CPU actors; each round the driver calls every actor once
with the round number and waits for all N answers (ray.get). Prints {"roundMs": [...]} for the timed rounds."""
import json
import sys
import time

import ray


@ray.remote(num_cpus=1)
class Worker:
    def answer(self, r):
        return r


def main(n: int, warm: int, timed: int) -> None:
    ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        actors = [Worker.remote() for _ in range(n)]
        ray.get([a.answer.remote(-1) for a in actors])  # every actor up
        rounds = []
        for r in range(warm + timed):
            t0 = time.perf_counter()
            assert ray.get([a.answer.remote(r) for a in actors]) == [r] * n
            if r >= warm:
                rounds.append((time.perf_counter() - t0) * 1000)
        print(json.dumps({"roundMs": rounds}))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
