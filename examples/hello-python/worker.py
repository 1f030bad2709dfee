"""A Python worker: reads its ID from the environment and uses the twister2 CLI for a barrier."""
import json
import os
import subprocess

worker_id = int(os.environ["TWISTER2_WORKER_ID"])
size = int(os.environ["TWISTER2_NUM_WORKERS"])
peers = json.loads(subprocess.run(["twister2", "workers", "--wait", "--json"], check=True, capture_output=True, text=True).stdout)
print(f"python worker {worker_id}/{size} sees workers {sorted(w['workerId'] for w in peers['workers'])}", flush=True)
subprocess.run(["twister2", "barrier", "sum"], check=True)
print(f"python worker {worker_id} passed the barrier", flush=True)
