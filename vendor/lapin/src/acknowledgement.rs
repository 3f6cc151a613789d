use crate::{
    Error, Promise, PromiseResolver,
    id_sequence::IdSequence,
    protocol::{AMQPError, AMQPSoftError},
    publisher_confirm::{Confirmation, PublisherConfirm},
    returned_messages::ReturnedMessages,
    shared::SharedMutex,
    types::{DeliveryTag, ShortString},
};
use std::{collections::HashMap, fmt, sync::MutexGuard};
use tracing::trace;

#[derive(Clone)]
pub(crate) struct Acknowledgements(SharedMutex<Inner>);

type AMQPResult = Result<(), AMQPError>;

impl Acknowledgements {
    pub(crate) fn new(channel_id: u16, returned_messages: ReturnedMessages) -> Self {
        Self(SharedMutex::new(Inner::new(channel_id, returned_messages)))
    }

    pub(crate) fn register_pending(&self, message_id: Option<ShortString>) -> PublisherConfirm {
        self.lock_inner().register_pending(message_id)
    }

    pub(crate) fn get_last_pending(&self) -> Option<Promise<()>> {
        self.lock_inner().last.take()
    }

    pub(crate) fn ack(&self, delivery_tag: DeliveryTag) -> AMQPResult {
        self.lock_inner().drop_pending(delivery_tag, true)
    }

    pub(crate) fn nack(&self, delivery_tag: DeliveryTag) -> AMQPResult {
        self.lock_inner().drop_pending(delivery_tag, false)
    }

    pub(crate) fn ack_all_pending(&self) {
        self.lock_inner().drop_all(true);
    }

    pub(crate) fn nack_all_pending(&self) {
        self.lock_inner().drop_all(false);
    }

    pub(crate) fn ack_all_before(&self, delivery_tag: DeliveryTag) -> AMQPResult {
        self.lock_inner()
            .complete_pending_before(delivery_tag, true)
    }

    pub(crate) fn nack_all_before(&self, delivery_tag: DeliveryTag) -> AMQPResult {
        self.lock_inner()
            .complete_pending_before(delivery_tag, false)
    }

    pub(crate) fn on_channel_error(&self, error: Error) {
        self.lock_inner().on_channel_error(error);
    }

    pub(crate) fn reset(&self, error: Error) {
        self.lock_inner().reset(error);
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        self.0.lock()
    }
}

impl fmt::Debug for Acknowledgements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Acknowledgements");
        if let Some(inner) = self.0.try_lock() {
            debug
                .field("delivery_tag", &inner.delivery_tag)
                .field("returned_messages", &inner.returned_messages)
                .field("pending", &inner.pending.keys());
        }
        debug.finish()
    }
}

struct Inner {
    channel_id: u16,
    delivery_tag: IdSequence<DeliveryTag>,
    last: Option<Promise<()>>,
    pending: HashMap<DeliveryTag, Pending>,
    returned_messages: ReturnedMessages,
}

// infor_comm patch: a pending confirm keeps its message's id, so that a returned message is told
// to the confirm of the message it carries, not to whichever confirm completes next.
type Pending = (
    PromiseResolver<Confirmation>,
    PromiseResolver<()>,
    Option<ShortString>,
);

impl Inner {
    fn new(channel_id: u16, returned_messages: ReturnedMessages) -> Self {
        Self {
            channel_id,
            delivery_tag: IdSequence::new(false),
            last: None,
            pending: HashMap::default(),
            returned_messages,
        }
    }

    fn register_pending(&mut self, message_id: Option<ShortString>) -> PublisherConfirm {
        let delivery_tag = self.delivery_tag.next();
        trace!("Publishing with delivery_tag {}", delivery_tag);
        let (promise, resolver) = Promise::new("acknowledgement");
        let (err_promise, err_resolver) = Promise::new("acknowledgement-error");
        let promise = PublisherConfirm::new(promise, self.returned_messages.clone());
        self.last = Some(err_promise);
        self.pending
            .insert(delivery_tag, (resolver, err_resolver, message_id));
        promise
    }

    fn complete_pending(
        &mut self,
        success: bool,
        delivery_tag: DeliveryTag,
        resolvers: Pending,
    ) {
        // infor_comm patch: the broker sends a message's return before the ack that covers it, and
        // one ack may cover many messages (`multiple`): the return is the one that carries this
        // message's id (the first without an id for a message without one).
        let returned_message = self
            .returned_messages
            .take_waiting_message(resolvers.2.as_ref());
        resolvers.0.resolve(if success {
            Confirmation::Ack(returned_message)
        } else {
            Confirmation::Nack(returned_message)
        });
        if Some(delivery_tag) == self.delivery_tag.current() {
            resolvers.1.resolve(());
        }
    }

    fn drop_all(&mut self, success: bool) {
        // infor_comm patch: in the order of the publishes, not the map's.
        let mut pending = std::mem::take(&mut self.pending)
            .into_iter()
            .collect::<Vec<_>>();
        pending.sort_unstable_by_key(|(delivery_tag, _)| *delivery_tag);
        for (delivery_tag, resolvers) in pending {
            self.complete_pending(success, delivery_tag, resolvers);
        }
        self.returned_messages.keep_unclaimed();
    }

    fn drop_pending(&mut self, delivery_tag: DeliveryTag, success: bool) -> AMQPResult {
        if let Some(resolvers) = self.pending.remove(&delivery_tag) {
            self.complete_pending(success, delivery_tag, resolvers);
            // infor_comm patch: a return no pending confirm can claim any more is kept for
            // `wait_for_confirms`.
            if self.pending.is_empty() {
                self.returned_messages.keep_unclaimed();
            }
            Ok(())
        } else {
            Err(AMQPError::new(
                AMQPSoftError::PRECONDITIONFAILED.into(),
                format!(
                    "invalid {} received for inexistant delivery_tag {} on channel {}, current is {:?}, was expecting one of {:?}",
                    if success { "ack" } else { "nack" },
                    delivery_tag,
                    self.channel_id,
                    self.delivery_tag.current(),
                    self.pending.keys()
                )
                .into(),
            ))
        }
    }

    fn complete_pending_before(&mut self, delivery_tag: DeliveryTag, success: bool) -> AMQPResult {
        // Tags are collected from self.pending, so drop_pending should never fail here.
        // Multiple errors are unlikely, and if they occur they are likely identical; callers
        // also handle the underlying acknowledgement state independently, so returning the
        // last error is sufficient.
        let mut res = Ok(());
        let mut tags = self
            .pending
            .keys()
            .filter(|tag| **tag <= delivery_tag)
            .cloned()
            .collect::<Vec<DeliveryTag>>();
        // infor_comm patch: in the order of the publishes, not the map's.
        tags.sort_unstable();
        for tag in tags {
            if let Err(err) = self.drop_pending(tag, success) {
                res = Err(err);
            }
        }
        res
    }

    fn on_channel_error(&mut self, error: Error) {
        for (delivery_tag, resolvers) in self.pending.drain() {
            resolvers.0.reject(error.clone());
            if Some(delivery_tag) == self.delivery_tag.current() {
                resolvers.1.reject(error.clone());
            }
        }
        self.returned_messages.clear_dropped_confirms();
    }

    fn reset(&mut self, error: Error) {
        self.delivery_tag = IdSequence::new(false);
        self.on_channel_error(error);
    }
}

#[cfg(test)]
mod infor_comm_patch_tests {
    use super::*;
    use crate::{BasicProperties, error_holder::ErrorHolder, message::BasicReturnMessage};

    /// The broker returns the message whose id is `id`, as a `basic.return` and its content.
    fn broker_returns(returned: &ReturnedMessages, id: Option<&str>) {
        returned.start_new_delivery(BasicReturnMessage::new(
            "".into(),
            "missing".into(),
            312,
            "NO_ROUTE".into(),
            ErrorHolder::default(),
        ));
        let mut properties = BasicProperties::default();
        if let Some(id) = id {
            properties = properties.with_message_id(id.into());
        }
        returned.handle_content_header_frame(0, properties, true);
    }

    /// The id of the returned message the confirm carries, or "-" for an ack without one.
    fn carried(confirm: PublisherConfirm) -> String {
        let confirmation = futures_lite::future::block_on(confirm).expect("resolved");
        assert!(confirmation.is_ack());
        match confirmation.take_message() {
            None => "-".to_string(),
            Some(message) => message
                .properties
                .message_id()
                .as_ref()
                .map_or("no id".to_string(), |id| id.to_string()),
        }
    }

    #[test]
    fn a_return_is_told_to_the_confirm_of_its_message_whatever_the_ack_covers() {
        // Five messages in flight; the third and the fifth are returned, then one ack covers
        // them all. Many times over, as the pending confirms are kept in a hash map.
        for _ in 0..200 {
            let returned = ReturnedMessages::default();
            let acknowledgements = Acknowledgements::new(1, returned.clone());
            let confirms: Vec<PublisherConfirm> = (1..=5)
                .map(|n| acknowledgements.register_pending(Some(n.to_string().into())))
                .collect();
            broker_returns(&returned, Some("3"));
            broker_returns(&returned, Some("5"));
            acknowledgements.ack_all_before(5).expect("pending");
            let carried: Vec<String> = confirms.into_iter().map(carried).collect();
            assert_eq!(carried, ["-", "-", "3", "-", "5"]);
            assert!(returned.drain().is_empty());
        }
    }

    #[test]
    fn a_return_of_a_later_message_waits_for_that_message_s_ack() {
        // The broker confirms a persistent message once it is stored, later than it returns an
        // unroutable one published after it.
        let returned = ReturnedMessages::default();
        let acknowledgements = Acknowledgements::new(1, returned.clone());
        let first = acknowledgements.register_pending(Some("a".into()));
        let second = acknowledgements.register_pending(Some("b".into()));
        broker_returns(&returned, Some("b"));
        acknowledgements.ack(1).expect("pending");
        assert_eq!(carried(first), "-");
        acknowledgements.ack(2).expect("pending");
        assert_eq!(carried(second), "b");
    }

    #[test]
    fn messages_without_ids_take_the_returns_without_ids_in_publish_order() {
        for _ in 0..200 {
            let returned = ReturnedMessages::default();
            let acknowledgements = Acknowledgements::new(1, returned.clone());
            let with_id = acknowledgements.register_pending(Some("x".into()));
            let first = acknowledgements.register_pending(None);
            let second = acknowledgements.register_pending(None);
            broker_returns(&returned, None);
            acknowledgements.ack_all_before(3).expect("pending");
            assert_eq!(carried(with_id), "-");
            assert_eq!(carried(first), "no id");
            assert_eq!(carried(second), "-");
        }
    }

    #[test]
    fn a_return_no_confirm_claims_is_kept_for_wait_for_confirms() {
        let returned = ReturnedMessages::default();
        let acknowledgements = Acknowledgements::new(1, returned.clone());
        let confirm = acknowledgements.register_pending(Some("a".into()));
        broker_returns(&returned, Some("someone else"));
        acknowledgements.ack(1).expect("pending");
        assert_eq!(carried(confirm), "-");
        let kept = returned.drain();
        assert_eq!(kept.len(), 1);
    }
}
