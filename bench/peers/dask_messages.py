"""Dask peer of the twister2 messages bench: a LocalCluster of N single-threaded worker processes; each round
the client runs one task pinned to each worker with the round number and gathers the N answers. Prints
{"roundMs": [...]} for the timed rounds."""
import json
import sys
import time

from distributed import Client, LocalCluster


def answer(r):
    return r


def main(n: int, warm: int, timed: int) -> None:
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(n)
            workers = sorted(client.scheduler_info()["workers"])
            rounds = []
            for r in range(warm + timed):
                t0 = time.perf_counter()
                futures = [client.submit(answer, r, workers=[w], pure=False) for w in workers]
                assert client.gather(futures) == [r] * n
                if r >= warm:
                    rounds.append((time.perf_counter() - t0) * 1000)
            print(json.dumps({"roundMs": rounds}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
