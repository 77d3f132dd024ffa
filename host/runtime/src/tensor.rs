//! `wasmflow:plugin/tensor`: dense layers a plugin hands to the host to run as native code.
//!
//! What the sandbox still guarantees with it (the guest chooses every size and value):
//! - memory: a layer's weights count against the instance's memory limit for as long as the
//!   layer lives (`MemoryCap::host_held`, which the linear memory's growth sees too), and an
//!   output is refused before it is allocated when it could not fit under the limit;
//! - time: a product checks the call's deadline every ~16 M multiply-adds and traps as
//!   `Trap::Interrupt` once it has passed, so the call ends as the same timeout as a guest's own
//!   endless loop and the instance is replaced;
//! - no panics: every length is checked against the sizes with overflow-checked products
//!   (`kernel.rs`), and a bad one is an `Err` the guest sees, naming the value.

use wasmtime::component::Resource;

use crate::bindings::wasmflow::plugin::tensor::{Host, HostDense};
use crate::kernel::{Dense, KernelError};
use crate::sandbox::PluginState;

/// What one layer costs beside its data (the table entry, the struct): so that a guest making
/// millions of empty layers is still bounded by its memory limit.
const LAYER_OVERHEAD: usize = 256;

/// A `dense` resource: the kernel's layer and the bytes counted against the instance for it.
pub struct DenseLayer {
    layer: Dense,
    charged: usize,
}

impl Host for PluginState {}

impl HostDense for PluginState {
    fn create(
        &mut self,
        inputs: u32,
        outputs: u32,
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: bool,
    ) -> wasmtime::Result<Result<Resource<DenseLayer>, String>> {
        let layer = match Dense::new(inputs as usize, outputs as usize, weights, bias, relu) {
            Ok(layer) => layer,
            Err(e) => return Ok(Err(message(e))),
        };
        let charged = layer.bytes() + LAYER_OVERHEAD;
        if charged > self.memory.available() {
            return Ok(Err(format!(
                "a layer of {inputs} by {outputs} ({} MiB) would take the instance past its \
                 memory limit of {} MiB",
                charged >> 20,
                self.memory.limit() >> 20
            )));
        }
        let resource = self.table.push(DenseLayer { layer, charged })?;
        self.memory.host_held += charged;
        Ok(Ok(resource))
    }

    fn inputs(&mut self, layer: Resource<DenseLayer>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&layer)?.layer.inputs() as u32)
    }

    fn outputs(&mut self, layer: Resource<DenseLayer>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&layer)?.layer.outputs() as u32)
    }

    fn apply(
        &mut self,
        layer: Resource<DenseLayer>,
        rows: u32,
        input: Vec<f32>,
    ) -> wasmtime::Result<Result<Vec<f32>, String>> {
        let available = self.memory.available();
        let limit = self.memory.limit();
        let deadline = self.deadline;
        let layer = &self.table.get(&layer)?.layer;
        let rows = rows as usize;
        // The result is copied into the guest's memory, which must grow to hold it: one that
        // cannot fit is refused before the host allocates it.
        match layer.output_bytes(rows) {
            Some(bytes) if bytes <= available => {}
            _ => {
                return Ok(Err(format!(
                    "{rows} rows of {} outputs would not fit the instance's memory limit of \
                     {} MiB",
                    layer.outputs(),
                    limit >> 20
                )));
            }
        }
        match layer.apply(rows, &input, deadline) {
            Ok(out) => Ok(Ok(out)),
            Err(KernelError::Deadline) => Err(wasmtime::Trap::Interrupt.into()),
            Err(e) => Ok(Err(message(e))),
        }
    }

    fn drop(&mut self, layer: Resource<DenseLayer>) -> wasmtime::Result<()> {
        let layer = self.table.delete(layer)?;
        self.memory.host_held = self.memory.host_held.saturating_sub(layer.charged);
        Ok(())
    }
}

fn message(e: KernelError) -> String {
    match e {
        KernelError::Invalid(message) => message,
        KernelError::Deadline => "ran past its deadline".into(),
    }
}
