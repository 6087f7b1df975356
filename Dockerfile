# The controller image: the rollouts wheel on a slim Python, running as an unprivileged user.
# Build: docker build -t REGISTRY/rollouts-controller:0.1.0 .   (docs/kubernetes.md; not built on the
# development machines, which have no container engine or registry; tests/deploy builds the same wheel
# from the same files and runs `rollouts controller --help` from it in a clean virtualenv).

FROM python:3.11-slim AS build
WORKDIR /src
# Only what .dockerignore lets through: pyproject.toml, README.md and src/.
COPY . .
RUN python -m pip wheel --no-cache-dir --no-deps . -w /wheels

FROM python:3.11-slim
# Dependencies come from the package index at build time; the package itself from the wheel above.
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin rollouts
ENV HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so that the kubelet can check runAsNonRoot without resolving the name.
USER 10001:10001
EXPOSE 8090
ENTRYPOINT ["rollouts"]
CMD ["controller", "--metrics-address=0.0.0.0:8090"]
