//! The TPM's command list with attributes (TPMA_CC), which the kernel reads once at
//! start to know how many handles each command names and whether its response
//! returns one.

use super::wire;

/// Attributes of every command the TPM implements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandTable {
    attrs: Vec<u32>,
}

impl CommandTable {
    /// Builds the table from TPMA_CC words as GetCapability(TPM_CAP_COMMANDS) lists
    /// them. Like the kernel, ContextSave and FlushContext are given one handle: the
    /// specification puts FlushContext's handle in the parameters, but a resource
    /// manager must map it like any other.
    pub fn from_attributes(attrs: impl IntoIterator<Item = u32>) -> CommandTable {
        let attrs = attrs
            .into_iter()
            .map(|a| {
                let cc = a & 0xFFFF;
                if cc == wire::CC_CONTEXT_SAVE || cc == wire::CC_FLUSH_CONTEXT {
                    (a & !(0x7 << 25)) | (1 << 25)
                } else {
                    a
                }
            })
            .collect();
        CommandTable { attrs }
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// The attributes of command code `cc`, if the TPM implements it.
    pub fn find(&self, cc: u32) -> Option<u32> {
        self.attrs
            .iter()
            .copied()
            .find(|&a| wire::cc_attr_code(a) == cc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_and_context_save_name_one_handle() {
        // FlushContext as a TPM lists it: no handle in the handle area.
        let table = CommandTable::from_attributes([0x0000_0165, 0x0200_0162, 0x0200_015D]);
        assert_eq!(table.len(), 3);
        let flush = table.find(wire::CC_FLUSH_CONTEXT).unwrap_or_default();
        assert_eq!(wire::cc_attr_handles(flush), 1);
        let save = table.find(wire::CC_CONTEXT_SAVE).unwrap_or_default();
        assert_eq!(wire::cc_attr_handles(save), 1);
        assert_eq!(table.find(0x15D), Some(0x0200_015D));
        assert_eq!(table.find(0x17B), None);
    }
}
