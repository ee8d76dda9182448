#!/usr/bin/env bash
# Makes the Dockerfile's two base images in the local podman storage when they are missing, with no
# registry: debian:12 (the build stage) by debootstrap, and a stand-in for
# gcr.io/distroless/cc-debian12:nonroot (the runtime stage) from the Debian packages that image is
# made of. Both stay in podman's storage, so the next run on the same machine reuses them (a few
# seconds instead of about a minute). The stand-in is not Google's build: same packages, same user,
# same layout where it matters (docs/image.md).
#   tests/image/base_images.sh          make what is missing
#   tests/image/base_images.sh --force  make both again (after a change to this file, for example)
# Needs root, debootstrap and podman (./setup.sh deps installs them), and Debian's archive.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/tests/image/containers.conf}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BUILD_BASE=docker.io/library/debian:12
RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
# Bumped when the recipe below changes: an image made by an older recipe is made again.
RECIPE=1
LABEL=io.mtls-guard.stand-in
# The packages gcr.io/distroless/cc-debian12 is made of (distroless' base and cc images for Debian 12).
RUNTIME_PACKAGES=(base-files netbase tzdata ca-certificates libc6 libssl3 libgcc-s1 libgomp1 libstdc++6)

force=0
[ "${1:-}" = --force ] && force=1

# Made by this script with the current recipe (or not made by it at all: a real image pulled
# under that name is used as it is).
wanted() { # image
    [ "$force" = 1 ] && return 0
    podman image exists "$1" || return 0
    local recipe
    recipe=$(podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$1" 2>/dev/null || true)
    if [ -n "$recipe" ] && [ "$recipe" != "<no value>" ] && [ "$recipe" != "$RECIPE" ]; then
        return 0
    fi
    echo "base image $1: present ($([ -n "$recipe" ] && [ "$recipe" != "<no value>" ] && echo "stand-in, recipe $recipe" || echo "not made here"))"
    return 1
}

work=$(mktemp -d /var/tmp/mtls-guard-base.XXXXXX)
helper=""
cleanup() {
    if [ -n "$helper" ]; then podman rm -f "$helper" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if wanted "$BUILD_BASE"; then
    started=$SECONDS
    echo "base image $BUILD_BASE: debootstrap --variant=minbase bookworm"
    timeout 900 debootstrap --variant=minbase bookworm "$work/debian" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
        { cat "$work/debootstrap.log"; exit 1; }
    # The sources of Docker's debian:12 (updates and security too), so that the build stage gets
    # the same package versions as with the real image.
    rm -f "$work/debian/etc/apt/sources.list"
    cat >"$work/debian/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -rf "$work"/debian/var/cache/apt/archives/*.deb "$work"/debian/var/lib/apt/lists/*
    tar -C "$work/debian" -c . | podman import -q --change "LABEL $LABEL=$RECIPE" \
        --change 'CMD ["bash"]' - "$BUILD_BASE" >/dev/null
    rm -rf "$work/debian"
    echo "base image $BUILD_BASE: made in $((SECONDS - started)) s"
fi

if wanted "$RUNTIME_BASE"; then
    started=$SECONDS
    echo "base image $RUNTIME_BASE: stand-in from ${RUNTIME_PACKAGES[*]}"
    mkdir -p "$work/out"
    # The packages are fetched and unpacked in a debian:12 container, so that their versions are
    # bookworm's current ones whatever the host runs. Each package is unpacked (never configured:
    # no maintainer scripts, as in distroless) and recorded in /var/lib/dpkg/status.d/, where
    # distroless keeps its package database and where image scanners and the Dockerfile's build
    # stage read it.
    helper=mtls-guard-base-$$
    # shellcheck disable=SC2016 # the script runs in the container, its variables expand there
    timeout 600 podman run --name "$helper" --network host --pull never -v "$work/out:/out" \
        -e PACKAGES="${RUNTIME_PACKAGES[*]}" \
        "$BUILD_BASE" bash -euo pipefail -c '
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # For the CA bundle, which ca-certificates makes in its maintainer script.
        apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
        mkdir -p /debs && cd /debs
        # shellcheck disable=SC2086 # a list of package names
        apt-get download -qq $PACKAGES
        root=/out/rootfs
        mkdir -p "$root/var/lib/dpkg/status.d"
        for deb in /debs/*.deb; do
            pkg=$(dpkg-deb -f "$deb" Package)
            dpkg-deb -x "$deb" "$root"
            # The control fields, with the Status line dpkg would write.
            dpkg-deb -f "$deb" | awk "NR == 2 { print \"Status: install ok installed\" } { print }" \
                >"$root/var/lib/dpkg/status.d/$pkg"
            dpkg-deb -c "$deb" | awk "{ print \$6 }" | sed "s,^\./,/," | grep -v "/\$" \
                >"$root/var/lib/dpkg/status.d/$pkg.list" || true
        done
        mkdir -p "$root/etc/ssl/certs"
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
        # What distroless writes itself: the users (nonroot is 65532), their homes, /tmp. No shell.
        printf "%s\n" "root:x:0:0:root:/root:/sbin/nologin" "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin" \
            "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" >"$root/etc/passwd"
        printf "%s\n" "root:x:0:" "nobody:x:65534:" "tty:x:5:" "staff:x:50:" "nonroot:x:65532:" >"$root/etc/group"
        mkdir -p "$root/root" "$root/home/nonroot" "$root/tmp"
        chmod 0700 "$root/root" "$root/home/nonroot"
        chown 65532:65532 "$root/home/nonroot"
        chmod 1777 "$root/tmp"
        rm -rf "$root/usr/share/doc"/*/changelog* "$root/usr/share/man" "$root/usr/share/lintian"
        if [ -e "$root/bin/sh" ] || [ -e "$root/usr/bin/sh" ]; then echo "a shell in the stand-in" >&2; exit 1; fi
    ' >"$work/helper.log" 2>&1 || { cat "$work/helper.log"; exit 1; }
    podman rm -f "$helper" >/dev/null
    helper=""
    tar -C "$work/out/rootfs" -c . | podman import -q --change "LABEL $LABEL=$RECIPE" \
        --change "USER 65532" --change "WORKDIR /home/nonroot" \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
        - "$RUNTIME_BASE" >/dev/null
    echo "base image $RUNTIME_BASE: made in $((SECONDS - started)) s"
fi
