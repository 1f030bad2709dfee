# The twister2 worker image for Kubernetes (kubernetes.image, default twister2/worker:0.1.0). Holds Node.js,
# twister2 (the worker runtime, the job master, the CLI) and, for kubernetes.openmpi jobs, OpenMPI and sshd.
# The same image runs the in-cluster job master (node /opt/twister2/bin/twister2.js jobmaster --in-cluster).
#
# Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t twister2/worker:0.1.0 .
#   docker build -f docker/worker.Dockerfile --build-arg OPENMPI=false -t twister2/worker:0.1.0-slim .
#
# Paths the Kubernetes launcher relies on (src/launchers/k8s/objects): the worker runtime at
# /opt/twister2/dist/worker/main.js, the CLI at /opt/twister2/bin/twister2.js (also `twister2` on PATH, for
# command workers' `twister2 barrier`), /twister2/shared as the pod's shared work directory, and for OpenMPI
# /usr/sbin/sshd, ssh, ssh-keygen, mpirun, getent and awk.

# --- build: compile the TypeScript sources and bundle the worker runtime (npm run build) ----------------
FROM node:20-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/bundle.mjs ./scripts/
RUN npm run build

# --- the image ----------------------------------------------------------------------------------------
FROM node:20-slim
ARG OPENMPI=true
# With OpenMPI: sshd accepts keys only (each job's key pair is installed at start from its Secret) and
# makes no DNS lookups that stall logins; host keys are made per container at start (ssh-keygen -A),
# never baked into the image.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates tini; \
    if [ "$OPENMPI" = "true" ]; then \
      apt-get install -y --no-install-recommends openmpi-bin openssh-server openssh-client; \
      mkdir -p /run/sshd; \
      printf '%s\n' 'PermitRootLogin prohibit-password' 'PasswordAuthentication no' 'UseDNS no' 'PrintMotd no' > /etc/ssh/sshd_config.d/twister2.conf; \
      rm -f /etc/ssh/ssh_host_*; \
    fi; \
    rm -rf /var/lib/apt/lists/*

WORKDIR /opt/twister2
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
RUN chmod +x bin/twister2.js \
    && ln -s /opt/twister2/bin/twister2.js /usr/local/bin/twister2 \
    && mkdir -p /twister2/shared

# The pods set their own command; run alone, the image starts the worker runtime (which needs the
# TWISTER2_* environment a launcher gives it). tini reaps the processes a worker's program leaves behind.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "/opt/twister2/dist/worker/main.js"]
