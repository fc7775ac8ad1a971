#!/usr/bin/env bash
# Set up everything the sandbox run and the test suite need, on a fresh Debian 12 machine as root.
# Idempotent: each step checks a cheap stamp keyed by its inputs and is skipped when nothing changed,
# so a second run takes about a second.
#
# Environment: WORK (default ~/.cache/cai-ack) holds the venv, collections, images' inputs and logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-$HOME/.cache/cai-ack}
COLL=$WORK/src/collections/ansible_collections/confidential_ai/ack
ANSIBLE_BUNDLE_VERSION=12.3.0
COLLECTIONS=(containers.podman kubernetes.core ansible.posix community.crypto community.general)
APT_PACKAGES=(podman runc conmon debootstrap rpm createrepo-c dnf python3-dnf shellcheck gocryptfs fuse3
  iproute2 openssl git python3-venv)
# What goes into the test image; changing this list rebuilds it.
IMAGE_PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,python3-cffi-backend,python3-cryptography,dnf,python3-dnf,rpm,iproute2,procps,ca-certificates
IMAGE_RECIPE_VERSION=1

mkdir -p "$WORK/logs"
START=$SECONDS
step() { printf '[setup %4ss] %s\n' "$((SECONDS - START))" "$*"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# 1. Debian packages
if dpkg -s "${APT_PACKAGES[@]}" >/dev/null 2>&1; then
  step "apt packages: present"
else
  step "apt packages: installing ${APT_PACKAGES[*]}"
  apt-get update -qq >"$WORK/logs/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_PACKAGES[@]}" >>"$WORK/logs/apt.log" 2>&1 \
    || { tail -20 "$WORK/logs/apt.log"; exit 1; }
fi

# 2. Python venv, keyed by the requirement files
export CONTAINERS_CONF=$ROOT/.ci/containers.conf
venv_key=$(hash_of "$ROOT/requirements.txt" "$ROOT/.ci/requirements-test.txt" "$ROOT/.ci/constraints.txt")
if [ "$(cat "$WORK/venv/.key" 2>/dev/null)" = "$venv_key" ]; then
  step "venv: up to date ($venv_key)"
else
  step "venv: building ($venv_key)"
  rm -rf "$WORK/venv"
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q --disable-pip-version-check -U pip >"$WORK/logs/pip.log" 2>&1
  (cd "$ROOT/.ci" && "$WORK/venv/bin/pip" install -q --disable-pip-version-check \
      -r requirements-test.txt -c constraints.txt) >>"$WORK/logs/pip.log" 2>&1 \
    || { grep -v '^WARNING' "$WORK/logs/pip.log" | tail -20; exit 1; }
  echo "$venv_key" >"$WORK/venv/.key"
fi

# 3. Collections from the ansible wheel (Galaxy is not reachable here)
coll_key="$ANSIBLE_BUNDLE_VERSION ${COLLECTIONS[*]}"
if [ "$(cat "$WORK/collections/.key" 2>/dev/null)" = "$coll_key" ]; then
  step "collections: up to date"
else
  step "collections: extracting ${COLLECTIONS[*]} from ansible==$ANSIBLE_BUNDLE_VERSION"
  rm -rf "$WORK/collections" "$WORK/dl"
  "$WORK/venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$WORK/dl" \
    "ansible==$ANSIBLE_BUNDLE_VERSION" >"$WORK/logs/collections.log" 2>&1
  "$WORK/venv/bin/python" "$ROOT/.ci/extract_collections.py" "$WORK/dl/ansible-$ANSIBLE_BUNDLE_VERSION-py3-none-any.whl" \
    "$WORK/collections" "${COLLECTIONS[@]}"
  rm -rf "$WORK/dl"
  echo "$coll_key" >"$WORK/collections/.key"
fi

# 4. The checkout at a path ending in ansible_collections/confidential_ai/ack (ansible-test needs
#    the physical path; a symlink does not do). A bind mount is a live view of the checkout.
mkdir -p "$COLL"
if mountpoint -q "$COLL"; then
  if [ "$(stat -c %d:%i "$COLL")" != "$(stat -c %d:%i "$ROOT")" ]; then
    # lazy: a process still working in the old checkout (a shell, an editor) must not block this
    umount -l "$COLL"
    mount --bind "$ROOT" "$COLL"
    step "checkout: re-mounted $ROOT at $COLL"
  else
    step "checkout: mounted"
  fi
else
  mount --bind "$ROOT" "$COLL"
  step "checkout: mounted $ROOT at $COLL"
fi

# 5. The get-pip stand-in ansible-test reads from its cache (cheap, always refreshed)
pip_version=$("$WORK/venv/bin/python" -c "from ansible_test._internal.python_requirements import get_venv_packages as g; \
from types import SimpleNamespace as S; print(g(S(version='3.11'))['pip'])")
mkdir -p "$HOME/.ansible/test/cache"
cp "$ROOT/.ci/get_pip_standin.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

# 6. The Debian 12 systemd test image (no registry is reachable: debootstrap + podman import)
image_key=$(echo "$IMAGE_RECIPE_VERSION $IMAGE_PACKAGES" | sha256sum | cut -c1-12)
IMAGE=localhost/cai-ack-systemd:$image_key
if podman image exists "$IMAGE"; then
  step "image: $IMAGE present"
else
  step "image: building $IMAGE (debootstrap, about a minute)"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase --include="$IMAGE_PACKAGES" bookworm "$WORK/rootfs" >"$WORK/logs/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/logs/debootstrap.log"; exit 1; }
  rm -rf "$WORK/rootfs/var/lib/apt/lists/"*
  # Deleting the lists bumps the directory's mtime, and apt's cache_valid_time would then skip the
  # first update; backdate it so the first apt task really updates.
  touch -d @0 "$WORK/rootfs/var/lib/apt/lists"
  mkdir -p "$WORK/rootfs/etc/yum.repos.d"
  tar -C "$WORK/rootfs" -c . | podman import --change 'CMD ["/sbin/init"]' - "$IMAGE" >/dev/null
  rm -rf "$WORK/rootfs"
fi

# 7. Test RPMs and the local yum repository (the Trustee stand-in), keyed by their sources
TRUSTEE_REPO_DIR=$WORK/trustee
if [ -x "$ROOT/sandbox/trustee/build-repo.sh" ] || [ -f "$ROOT/sandbox/trustee/build-repo.sh" ]; then
  bash "$ROOT/sandbox/trustee/build-repo.sh" "$TRUSTEE_REPO_DIR" >"$WORK/logs/trustee-rpm.log" 2>&1 \
    || { tail -20 "$WORK/logs/trustee-rpm.log"; exit 1; }
  step "trustee stand-in repo: $TRUSTEE_REPO_DIR/yumrepo"
fi

# 8. Wheels for the test hosts: a container installs Python packages from this directory
#    (mounted read-only, pip --no-index), so test hosts need no route or CA setup to the index
WHEELHOUSE=$WORK/wheelhouse
WHEELHOUSE_REQUIREMENTS="oss2==2.19.1"
wheelhouse_key="$WHEELHOUSE_REQUIREMENTS $(hash_of "$ROOT/.ci/constraints.txt")"
if [ "$(cat "$WHEELHOUSE/.key" 2>/dev/null)" = "$wheelhouse_key" ]; then
  step "wheelhouse: up to date"
else
  step "wheelhouse: building wheels of $WHEELHOUSE_REQUIREMENTS"
  rm -rf "$WHEELHOUSE"
  # shellcheck disable=SC2086  # a word list of requirements
  "$WORK/venv/bin/pip" wheel -q --disable-pip-version-check -c "$ROOT/.ci/constraints.txt" -w "$WHEELHOUSE" $WHEELHOUSE_REQUIREMENTS \
    >"$WORK/logs/wheelhouse.log" 2>&1 || { tail -20 "$WORK/logs/wheelhouse.log"; exit 1; }
  echo "$wheelhouse_key" >"$WHEELHOUSE/.key"
fi

# 9. The environment every later step sources
cat >"$WORK/env.sh" <<ENV
# written by .ci/setup.sh
export WORK="$WORK"
export COLL="$COLL"
export PATH="$WORK/venv/bin:\$PATH"
export CONTAINERS_CONF="$CONTAINERS_CONF"
export ANSIBLE_COLLECTIONS_PATH="$WORK/src/collections:$WORK/collections"
export MOLECULE_IMAGE="$IMAGE"
export TRUSTEE_REPO_DIR="$TRUSTEE_REPO_DIR/yumrepo"
export TEST_WHEELHOUSE="$WHEELHOUSE"
export ANSIBLE_FORCE_COLOR=false
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
ENV
step "done: source $WORK/env.sh"
