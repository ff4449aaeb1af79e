//! In-process fan-out: publishing hands the event straight to this process's listener, so
//! it never fails and never needs a `Resync`.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use crate::domain::RoomId;
use crate::ports::{Bus, BusEvent, BusListener, Unavailable};

#[derive(Default)]
pub struct MemoryBus {
    listener: OnceLock<Arc<dyn BusListener>>,
}

impl MemoryBus {
    pub fn new() -> MemoryBus {
        MemoryBus::default()
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn start(&self, listener: Arc<dyn BusListener>) {
        let _ = self.listener.set(listener);
    }

    async fn publish(&self, event: BusEvent) -> Result<(), Unavailable> {
        if let Some(listener) = self.listener.get() {
            listener.deliver(event);
        }
        Ok(())
    }

    async fn subscribe(&self, _room: RoomId) -> Result<(), Unavailable> {
        Ok(())
    }

    async fn unsubscribe(&self, _room: RoomId) -> Result<(), Unavailable> {
        Ok(())
    }
}
