"""Ray peer of the twister2 start-up bench: Ray's local mode with N CPUs, N one-CPU actors that each
answer one call, then shutdown. Run as a whole process."""
import sys

import ray


@ray.remote(num_cpus=1)
class Worker:
    def answer(self, i):
        return i


def main(n: int) -> None:
    ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        actors = [Worker.remote() for _ in range(n)]
        assert ray.get([a.answer.remote(i) for i, a in enumerate(actors)]) == list(range(n))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]))
