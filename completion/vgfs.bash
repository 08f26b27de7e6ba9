# bash completion for vgfs (installed by meson into
# share/bash-completion/completions/vgfs). Completes the commands, their
# options, and LV, PV and job names read from a mount point's .vgfs/ folder.

_vgfs_mountpoint_of() {
    # The first operand after the command that is a vgfs mount point.
    local w
    for w in "${COMP_WORDS[@]:2:COMP_CWORD-2}"; do
        [[ $w != -* && -e $w/.vgfs/ctl ]] && { printf '%s' "$w"; return; }
    done
}

_vgfs_names() {
    # _vgfs_names MOUNTPOINT lvs|pvs|jobs: the names under .vgfs/<kind>/.
    local d=$1/.vgfs/$2
    [[ -d $d ]] && (cd "$d" 2>/dev/null && compgen -G '*')
}

_vgfs() {
    local cur prev verb mp
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local verbs="create mount lvs pvs vgs dump check move pvmove jobs abort pause resume restore
                 lvcreate lvchange lvextend lvreduce lvremove lvrename pvadd pvremove limit scan help"
    if (( COMP_CWORD == 1 )); then
        COMPREPLY=($(compgen -W "$verbs --help --version" -- "$cur"))
        [[ $cur == */* || $cur == .* ]] && COMPREPLY+=($(compgen -f -- "$cur"))
        return
    fi
    verb=${COMP_WORDS[1]}
    case $prev in
        --units) COMPREPLY=($(compgen -W "h H r R b s k m g t p e K M G T P E" -- "$cur")); return ;;
        --reportformat) COMPREPLY=($(compgen -W "basic json" -- "$cur")); return ;;
        -o|--options)
            if [[ $verb == mount ]]; then
                COMPREPLY=($(compgen -W "ro allow_other debug threads= splice_read no_splice_read splice_write no_splice_write" -- "$cur"))
            else
                local fields
                fields=$(vgfs "$verb" -o help 2>/dev/null | awk '/^    [a-z]/ {print $1}')
                COMPREPLY=($(compgen -W "help $fields" -- "${cur#+}"))
                [[ $cur == +* ]] && COMPREPLY=("${COMPREPLY[@]/#/+}")
            fi
            return ;;
        -L|--size|-l|--extents|-n|--name|--separator|--limit|--mode) return ;;
        --uid) COMPREPLY=($(compgen -u -- "$cur")); return ;;
        --gid) COMPREPLY=($(compgen -g -- "$cur")); return ;;
    esac
    local opts=""
    case $verb in
        create) opts="--force" ;;
        mount) opts="-f --foreground -o --vg" ;;
        lvs) opts="-o --options --units --nosuffix --noheadings --separator --reportformat --maps --json -a --all --vg" ;;
        pvs) opts="-o --options --units --nosuffix --noheadings --separator --reportformat --maps --json --vg" ;;
        vgs) opts="-o --options --units --nosuffix --noheadings --separator --reportformat --json --vg" ;;
        move) opts="--wait --limit" ;;
        pvmove) opts="--wait --limit --finish --abort" ;;
        jobs) opts="--json --wait" ;;
        lvcreate) opts="-n --name -L --size -l --extents --uid --gid --mode" ;;
        lvchange) opts="--uid --gid --mode" ;;
        pvadd) opts="--force" ;;
        scan) opts="--json" ;;
        dump) opts="--vg --lvm2" ;;
        check) opts="--vg" ;;
        lvextend) opts="-L --size -l --extents" ;;
        lvreduce) opts="-L --size -l --extents -y --yes -f --force" ;;
        lvremove) opts="-y --yes -f --force" ;;
        help) COMPREPLY=($(compgen -W "$verbs" -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
        return
    fi
    mp=$(_vgfs_mountpoint_of)
    if [[ -z $mp ]]; then
        # The first operand: a config file or a mount point.
        COMPREPLY=($(compgen -f -- "$cur"))
        compopt -o filenames 2>/dev/null
        return
    fi
    case $verb in
        lvextend|lvreduce|lvremove|lvrename|lvchange|move) COMPREPLY=($(compgen -W "$(_vgfs_names "$mp" lvs) $(_vgfs_names "$mp" pvs)" -- "$cur")) ;;
        pvmove|pvremove|lvcreate) COMPREPLY=($(compgen -W "$(_vgfs_names "$mp" pvs)" -- "$cur")) ;;
        abort|pause|resume|limit) COMPREPLY=($(compgen -W "$(_vgfs_names "$mp" jobs)" -- "$cur")) ;;
        pvadd) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
    esac
}
complete -F _vgfs vgfs
