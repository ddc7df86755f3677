#!/bin/bash
# dracut module: homeport in the initramfs (the same as the initramfs-tools
# hook, see ../../README.md): the static binary, its configuration, the
# [remote] secret and the [nbd] TLS files (key and PSK file 0600) when
# set, e2fsck, the nbd and
# ext4 modules, and a pre-mount hook that runs the boot phase and starts the
# agent once the network is up.
#
# Settings (environment of dracut): HOMEPORT_BIN (default: homeport in
# PATH, /usr/local/sbin or /usr/sbin), HOMEPORT_CONF (default
# /etc/homeport.conf; installed as /etc/homeport.conf).

# _homeport_bin: the binary to install, or nothing.
_homeport_bin() {
    local b
    if [[ $HOMEPORT_BIN ]]; then
        [[ -x $HOMEPORT_BIN ]] && echo "$HOMEPORT_BIN"
        return 0
    fi
    for b in /usr/local/sbin/homeport /usr/sbin/homeport; do
        [[ -x $dracutsysrootdir$b ]] && { echo "$b"; return 0; }
    done
    return 0
}

# Only when asked for (--add homeport or add_dracutmodules+=" homeport "):
# 255 = "include only if requested"; 1 when the binary is missing.
check() {
    [[ $(_homeport_bin) ]] || return 1
    [[ -r ${HOMEPORT_CONF:-/etc/homeport.conf} ]] || return 1
    return 255
}

depends() {
    echo network
    return 0
}

installkernel() {
    instmods nbd ext4
}

# conf_get SECTION KEY FILE: the value of KEY in [SECTION] (the last wins).
_homeport_conf_get() {
    sed -n -e 's/[[:space:]]*$//' -e "/^[[:space:]]*\[/{ s/^[[:space:]]*\[[[:space:]]*\([^]]*[^][:space:]]\)[[:space:]]*\].*/\1/; h; d; }" \
        -e "/^[[:space:]]*$2[[:space:]]*=/{ x; /^$1\$/{ x; s/^[^=]*=[[:space:]]*//; p; d; }; x; }" "$3" | tail -n 1
}

install() {
    local bin conf secret
    bin=$(_homeport_bin)
    conf=${HOMEPORT_CONF:-/etc/homeport.conf}
    inst_simple "$bin" /usr/sbin/homeport
    inst_simple "$conf" /etc/homeport.conf
    secret=$(_homeport_conf_get remote secret_file "$conf")
    secret=${secret:-/etc/homeport/secret}
    if [[ -f $secret ]]; then
        inst_simple "$secret" "$secret"
        # inst_simple keeps the mode; make sure it is root-only
        chmod 0600 "${initdir}${secret}"
    fi
    # the machine's TLS files for NBD ([nbd] tls_*); key and PSK root-only
    local key f
    for key in tls_ca_file tls_cert_file tls_key_file tls_psk_file; do
        f=$(_homeport_conf_get nbd "$key" "$conf")
        [[ $f ]] || continue
        if [[ ! -f $f ]]; then
            dwarn "homeport: $key $f does not exist: homeport will refuse to start"
            continue
        fi
        inst_simple "$f" "$f"
        case $key in
        tls_key_file | tls_psk_file)
            [[ $(stat -c %a "$f") == 600 || $(stat -c %a "$f") == 400 ]] ||
                dwarn "homeport: $f has mode $(stat -c %a "$f"), not 0600: homeport will refuse it"
            chmod 0600 "${initdir}${f}"
            ;;
        esac
    done
    inst_multiple -o e2fsck modprobe
    inst_hook pre-mount 50 "$moddir/homeport-start.sh"
}
