-- name: agent_may_see_customer(agent_id, customer_id)$
-- Whether an agent may see a customer's bookings (API.md visibility): one of the customer's
-- tickets is assigned to them, or they are in an active chat with the customer.
SELECT EXISTS (SELECT 1 FROM support_tickets WHERE agent_id = :agent_id AND customer_id = :customer_id)
    OR EXISTS (SELECT 1 FROM chat_sessions
               WHERE agent_id = :agent_id AND customer_id = :customer_id AND status = 'active');
