"""Dask peer of the twister2 start-up bench: a LocalCluster of N single-threaded worker processes, one
task pinned to each worker that looks up the others (discovery), then teardown. Run as a whole process."""
import sys

from distributed import Client, LocalCluster


def main(n: int) -> None:
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(n)
            workers = sorted(client.scheduler_info()["workers"])
            futures = [client.submit(lambda i, peers=workers: (i, len(peers)), i, workers=[w], pure=False) for i, w in enumerate(workers)]
            answers = client.gather(futures)
            assert len(answers) == n and all(p == n for _, p in answers), answers


if __name__ == "__main__":
    main(int(sys.argv[1]))
