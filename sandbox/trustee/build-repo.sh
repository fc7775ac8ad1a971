#!/usr/bin/env bash
# Build the Trustee stand-in RPM(s) (a TEST DOUBLE named "trustee") and a yum repository.
#
#   sandbox/trustee/build-repo.sh [--version V]... WORKDIR
#
# Writes WORKDIR/rpmbuild (rpmbuild _topdir) and WORKDIR/yumrepo (createrepo_c). Default version:
# 1.5.2. Give --version more than once to put several versions in one repository, for example
# "--version 1.5.2 --version 1.5.3" for upgrade tests. The repository is rebuilt from scratch
# whenever the sources, this script or the version list change (keyed on a sha256 of all of them),
# and left alone otherwise. Needs rpmbuild and createrepo_c (Debian: rpm, createrepo-c).
set -euo pipefail

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

die() {
    printf 'build-repo.sh: %s\n' "$*" >&2
    exit 2
}

versions=()
workdir=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --version)
            [[ $# -ge 2 ]] || die "--version needs a value"
            versions+=("$2")
            shift 2
            ;;
        --version=*)
            versions+=("${1#--version=}")
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            die "unknown option $1"
            ;;
        *)
            [[ -z "$workdir" ]] || die "only one WORKDIR"
            workdir="$1"
            shift
            ;;
    esac
done
[[ -n "$workdir" ]] || { usage >&2; exit 2; }
if [[ ${#versions[@]} -eq 0 ]]; then
    versions=(1.5.2)
fi
for v in "${versions[@]}"; do
    [[ "$v" =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "bad version '$v' (digits and dots only)"
done
command -v rpmbuild >/dev/null || die "rpmbuild not found (apt-get install rpm)"
command -v createrepo_c >/dev/null || die "createrepo_c not found (apt-get install createrepo-c)"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sources=(
    build-repo.sh trustee.spec trustee_standin.py README.md
    configs/kbs-config.toml configs/as-config.json configs/rvps.json configs/gateway.yml configs/sgx_default_qcnl.conf
    units/kbs.service units/as.service units/as-restful.service units/rvps.service
    units/trustee-gateway.service units/trustee.service
)

mkdir -p "$workdir"
workdir="$(cd "$workdir" && pwd)"
repo="$workdir/yumrepo"
stamp="$repo/.stand-in-sources.sha256"

hash="$(
    {
        printf 'versions %s\n' "${versions[*]}"
        for f in "${sources[@]}"; do
            printf 'file %s\n' "$f"
            cat "$here/$f"
        done
    } | sha256sum | cut -d' ' -f1
)"

if [[ -f "$repo/repodata/repomd.xml" && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
    echo "build-repo.sh: $repo is up to date (${versions[*]})"
    exit 0
fi

# createrepo_c --update keeps stale metadata for a rebuilt package of the same version:
# always start from an empty tree.
rm -rf "$workdir/rpmbuild" "$repo"
mkdir -p "$workdir/rpmbuild/SOURCES" "$repo"
for f in "${sources[@]}"; do
    cp "$here/$f" "$workdir/rpmbuild/SOURCES/"
done

log="$workdir/rpmbuild/build.log"
for v in "${versions[@]}"; do
    if ! rpmbuild -bb --nodeps \
        --define "_topdir $workdir/rpmbuild" \
        --define "standin_version $v" \
        "$here/trustee.spec" >>"$log" 2>&1; then
        cat "$log" >&2
        die "rpmbuild failed for version $v (log: $log)"
    fi
done

cp "$workdir"/rpmbuild/RPMS/noarch/trustee-*.rpm "$repo/"
createrepo_c -q "$repo"
printf '%s\n' "$hash" >"$stamp"
echo "build-repo.sh: built ${versions[*]} into $repo"
