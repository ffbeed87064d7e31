//! Field offsets of the running kernel's structures, read from its BTF
//! (`/sys/kernel/btf/vmlinux`), for the exec program (aya-ebpf in Rust has no CO-RE: the loader
//! looks the offsets up and writes them to the `OFFSETS` map).

use std::collections::HashMap;

use aa_ebpf_common::Offsets;

/// Why the offsets could not be found.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file.
    #[error("reading {path}: {source}")]
    Read {
        /// The BTF file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not BTF, or cut short.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// A structure or member this kernel does not have.
    #[error("no {0} in the kernel's BTF")]
    Missing(String),
}

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

struct Member {
    name: String,
    ty: u32,
    /// Bit offset.
    bits: u32,
}

struct Type {
    kind: u32,
    name: String,
    /// Referenced type (typedef, const, …).
    target: u32,
    members: Vec<Member>,
}

/// The parsed type section: what [`Btf::offset`] needs.
pub struct Btf {
    types: Vec<Type>,
    structs: HashMap<String, u32>,
}

impl Btf {
    /// Parses the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parses little-endian BTF.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let u32_at = |o: usize| -> Result<u32, BtfError> {
            data.get(o..o + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or(BtfError::Malformed("cut short"))
        };
        if data.get(0..2) != Some(&[0x9f, 0xeb]) {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr = u32_at(4)? as usize;
        let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
        let str_off = u32_at(16)? as usize;
        let strings = data
            .get(hdr + str_off..)
            .ok_or(BtfError::Malformed("string section"))?;
        let name = |off: u32| -> String {
            let s = strings.get(off as usize..).unwrap_or_default();
            let end = s.iter().position(|b| *b == 0).unwrap_or(s.len());
            String::from_utf8_lossy(s.get(..end).unwrap_or_default()).into_owned()
        };
        // Type id 0 is `void`.
        let mut types = vec![Type {
            kind: 0,
            name: String::new(),
            target: 0,
            members: Vec::new(),
        }];
        let mut structs = HashMap::new();
        let (mut at, end) = (hdr + type_off, hdr + type_off + type_len);
        while at < end {
            let name_off = u32_at(at)?;
            let info = u32_at(at + 4)?;
            let size_or_type = u32_at(at + 8)?;
            at += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let off = u32_at(m + 8)?;
                        members.push(Member {
                            name: name(u32_at(m)?),
                            ty: u32_at(m + 4)?,
                            bits: if kind_flag { off & 0x00ff_ffff } else { off },
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                _ => 0,
            };
            at += extra;
            let t = Type {
                kind,
                name: name(name_off),
                target: size_or_type,
                members,
            };
            if kind == KIND_STRUCT && !t.members.is_empty() {
                structs
                    .entry(t.name.clone())
                    .or_insert(u32::try_from(types.len()).unwrap_or(u32::MAX));
            }
            types.push(t);
        }
        Ok(Btf { types, structs })
    }

    /// Byte offset of `member` in `struct name`, looking into anonymous structs and unions.
    pub fn offset(&self, name: &str, member: &str) -> Result<u64, BtfError> {
        let id = *self
            .structs
            .get(name)
            .ok_or_else(|| BtfError::Missing(format!("struct {name}")))?;
        self.find(id, member, 0)
            .map(|bits| u64::from(bits / 8))
            .ok_or_else(|| BtfError::Missing(format!("{name}.{member}")))
    }

    fn find(&self, id: u32, member: &str, depth: u32) -> Option<u32> {
        let t = self.types.get(id as usize)?;
        for m in &t.members {
            if m.name == member {
                return Some(m.bits);
            }
            if m.name.is_empty() && depth < 8 {
                let inner = self.resolve(m.ty);
                if let Some(bits) = self.find(inner, member, depth + 1) {
                    return Some(m.bits + bits);
                }
            }
        }
        None
    }

    /// Skips typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..16 {
            match self.types.get(id as usize).map(|t| (t.kind, t.target)) {
                Some((
                    KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG,
                    target,
                )) => id = target,
                _ => break,
            }
        }
        id
    }

    /// The offsets the exec and path programs read.
    pub fn exec_offsets(&self) -> Result<Offsets, BtfError> {
        Ok(Offsets {
            bprm_file: self.offset("linux_binprm", "file")?,
            bprm_filename: self.offset("linux_binprm", "filename")?,
            bprm_interp: self.offset("linux_binprm", "interp")?,
            file_inode: self.offset("file", "f_inode")?,
            file_path: self.offset("file", "f_path")?,
            path_mnt: self.offset("path", "mnt")?,
            path_dentry: self.offset("path", "dentry")?,
            inode_ino: self.offset("inode", "i_ino")?,
            inode_sb: self.offset("inode", "i_sb")?,
            sb_dev: self.offset("super_block", "s_dev")?,
            dentry_parent: self.offset("dentry", "d_parent")?,
            dentry_name: self.offset("dentry", "d_name")? + self.offset("qstr", "name")?,
            vfsmount_root: self.offset("vfsmount", "mnt_root")?,
            mount_mnt: self.offset("mount", "mnt")?,
            mount_parent: self.offset("mount", "mnt_parent")?,
            mount_mountpoint: self.offset("mount", "mnt_mountpoint")?,
            task_mm: self.offset("task_struct", "mm")?,
            mm_arg_start: self.offset("mm_struct", "arg_start")?,
            mm_arg_end: self.offset("mm_struct", "arg_end")?,
            task_fs: self.offset("task_struct", "fs")?,
            fs_pwd: self.offset("fs_struct", "pwd")?,
            task_files: self.offset("task_struct", "files")?,
            files_fdt: self.offset("files_struct", "fdt")?,
            fdt_fd: self.offset("fdtable", "fd")?,
            fdt_max_fds: self.offset("fdtable", "max_fds")?,
            ready: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_kernel_has_every_offset_the_exec_program_reads() {
        let Ok(btf) = Btf::from_sys_fs() else {
            eprintln!("no /sys/kernel/btf/vmlinux: skipped");
            return;
        };
        let o = btf.exec_offsets().unwrap();
        // `path` is { mnt, dentry }; `qstr.name` follows the 8-byte hash_len.
        assert_eq!((o.path_mnt, o.path_dentry), (0, 8));
        assert!(
            o.dentry_name >= 8 && o.mm_arg_end == o.mm_arg_start + 8,
            "{o:?}"
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            Btf::parse(b"not btf"),
            Err(BtfError::Malformed(_))
        ));
    }
}
