#!/bin/sh
set -eu
echo "worker $TWISTER2_WORKER_ID of $TWISTER2_NUM_WORKERS starting"
twister2 barrier start
echo "worker $TWISTER2_WORKER_ID sees $(twister2 workers --wait --json | grep -o '"workerId"' | wc -l) workers"
twister2 barrier done
