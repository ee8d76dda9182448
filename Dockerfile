# mtls-guard image: built on Debian 12 with ./setup.sh, run on distroless cc-debian12 as UID 65532.
#
# Runtime base: gcr.io/distroless/cc-debian12:nonroot, not debian:12-slim, because
#  - the webhook runs with an API server's trust and cluster-wide read access: the runtime image holds
#    no shell, no package manager and no coreutils an attacker could use after an exploit, and no
#    packages that scanners flag and that we would have to update without using them;
#  - it is Debian 12 too (the same glibc 2.36 and GCC 12 runtime as the build stage) and already has
#    glibc, libstdc++, libgcc_s, OpenSSL, CA certificates, tzdata, /etc/passwd with "nonroot"
#    (65532), /tmp;
#  - the other libraries the binary links (libfyaml, spdlog, fmt, simdjson, prometheus-cpp) are
#    copied from the build stage, exactly the files `ldd` resolves for this binary, so the image is
#    only the binary and what it loads. A library of a package the base has (by its package
#    database) is taken from the base, never copied: glibc must be one build (ld.so, libc, libm),
#    and a second OpenSSL would be one the base's database and image scanners do not know.
# debian:12-slim would work as well (apt-get install libfyaml0 libspdlog1.10 libssl3 ...: the
# library packages behind the -dev packages setup.sh installs) but brings a shell, apt and ~75 MB
# of packages the webhook never uses.
# Trade-off: the copied libraries get Debian security fixes only when the image is rebuilt; rebuild
# regularly (as with any image), and pin both base images by digest in CI.
#
# Build: docker build -t mtls-guard .      Run: see deploy/ and charts/mtls-guard.
# Built and run in CI by tests/image/image_test.sh (podman, with locally made base images: docs/image.md).

# ---- build: the project's own setup script installs the Debian packages and builds build/mtls-guard
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY . .
# Release build of the binary only (tests are built and run by CI, not in the image), with only the
# libraries it links: no test tools, no npm.
RUN MTLS_GUARD_BUILD_ONLY=1 BUILD_DIR=build BUILD_TYPE=Release CMAKE_ARGS="-DMTLS_GUARD_TESTS=OFF" ./setup.sh build

# The runtime base's package database (distroless keeps one file per package in status.d/): every
# library of a package the base has is left to the base, so the image never holds a second,
# possibly different copy of, say, libssl3 that the base's database and image scanners do not know.
# The image by name, not a `FROM ... AS runtime-base` stage: podman 4.3 (buildah) with
# --layers=false deleted the tagged base image along with such a stage, an intermediate it removes.
COPY --from=gcr.io/distroless/cc-debian12:nonroot /var/lib/dpkg/status.d/ /runtime-base/status.d/

# Collect /rootfs: the stripped binary, and every shared library ldd resolves for it except those of
# packages the runtime base has (glibc, libstdc++, libgcc_s and OpenSSL in cc-debian12, from the same
# Debian release), each at its real path under the name (soname) the loader asks for, with its
# Debian copyright file. glibc must come from the base (ld.so, libc and libm from one build): the
# build fails if the base's database does not list libc6.
RUN set -eu; \
    bin=build/mtls-guard; \
    if ldd "$bin" | grep -q 'not found'; then ldd "$bin"; exit 1; fi; \
    sed -n 's/^Package: *//p' /runtime-base/status.d/* | sort -u > /tmp/base-packages; \
    grep -qx libc6 /tmp/base-packages || { echo "the runtime base lists no libc6 in /var/lib/dpkg/status.d"; exit 1; }; \
    mkdir -p /rootfs; \
    install -m 0755 "$bin" /rootfs/mtls-guard; \
    strip --strip-unneeded /rootfs/mtls-guard; \
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u > /tmp/libs; \
    while read -r lib; do \
        name=$(basename "$lib"); \
        real=$(readlink -f "$lib"); \
        dir=$(dirname "$real"); \
        pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$dir/$name" 2>/dev/null || dpkg -S "$real" 2>/dev/null || true); \
        pkg=${pkg%%:*}; \
        if [ -n "$pkg" ] && grep -qx "$pkg" /tmp/base-packages; then \
            echo "from the base image: $name ($pkg)"; continue; \
        fi; \
        mkdir -p "/rootfs$dir"; \
        cp -L "$lib" "/rootfs$dir/$name"; \
        echo "bundled $dir/$name ($(basename "$real"), ${pkg:-unknown package})"; \
        if [ -n "$pkg" ] && [ -f "/usr/share/doc/$pkg/copyright" ]; then \
            mkdir -p "/rootfs/usr/share/doc/$pkg"; \
            cp "/usr/share/doc/$pkg/copyright" "/rootfs/usr/share/doc/$pkg/copyright"; \
        fi; \
    done < /tmp/libs

# ---- runtime: distroless, non-root, no shell (the same image as in the COPY --from above)
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /rootfs/ /
# Fails the image build if the binary cannot load (a missing library) in this base. Exec form:
# there is no /bin/sh here. `mtls-guard --help` must exit 0.
RUN ["/mtls-guard", "--help"]
USER 65532:65532
# 8443: HTTPS (/validate, /healthz, /readyz); 9090: /metrics with --metrics-listen 0.0.0.0:9090.
EXPOSE 8443 9090
ENTRYPOINT ["/mtls-guard"]
CMD ["--help"]
