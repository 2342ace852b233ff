-- A voicebot database as the code of commit cb5a9b1 left it (before Alembic migrations), dumped with sqlite3's
-- iterdump: the tables of all five declarative bases made by their stores' create_all, with one row or two in
-- every table written through that commit's ensure_database, CallStore, UserStore, CallbackStore and
-- TransferStore. As in the field, voicebot_calls and voicebot_audit were first created by older code (d961274,
-- 198ae43) and widened by cb5a9b1's add_missing_columns, so they lack the indexes of the columns added later.
-- tests/test_migrations.py upgrades it with `voicebot db upgrade`. Never regenerate it from newer code.
BEGIN TRANSACTION;
CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	actor VARCHAR(60) NOT NULL, 
	contact_id INTEGER, 
	customer_id INTEGER, 
	entity VARCHAR(40) NOT NULL, 
	entity_id INTEGER, 
	action VARCHAR(40) NOT NULL, 
	"before" JSON, 
	"after" JSON, 
	PRIMARY KEY (id)
);
INSERT INTO "audit_log" VALUES(1,'2026-11-30 10:00:00.000000','bot',1,1,'customer',1,'view',NULL,NULL);
CREATE TABLE callback_requests (
	id INTEGER NOT NULL, 
	call_id VARCHAR(128) NOT NULL, 
	caller VARCHAR(128), 
	queue VARCHAR(64) NOT NULL, 
	reason VARCHAR(32) NOT NULL, 
	handoff JSON NOT NULL, 
	requested_at DATETIME NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	updated_at DATETIME, 
	PRIMARY KEY (id)
);
INSERT INTO "callback_requests" VALUES(1,'call-1','+15551230001','general','callback','{"intent": "order_status"}','2026-11-30 10:01:00.000000','pending',NULL);
CREATE TABLE contacts (
	id INTEGER NOT NULL, 
	channel VARCHAR(16) NOT NULL, 
	caller_id VARCHAR(40), 
	customer_id INTEGER, 
	started_at DATETIME NOT NULL, 
	ended_at DATETIME, 
	outcome VARCHAR(40), 
	summary TEXT, 
	intents JSON, 
	transcript JSON, 
	handoff JSON, 
	frustration_max FLOAT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(customer_id) REFERENCES customers (id)
);
INSERT INTO "contacts" VALUES(1,'sip','+15551230001',1,'2026-11-30 10:00:00.000000','2026-11-30 10:00:00.000000','resolved','asked where order 45281 is','["order_status"]','[{"speaker": "caller", "text": "where is my order"}]',NULL,0.2);
CREATE TABLE customers (
	id INTEGER NOT NULL, 
	first_name VARCHAR(80) NOT NULL, 
	last_name VARCHAR(80) NOT NULL, 
	email VARCHAR(200), 
	phone VARCHAR(20), 
	date_of_birth DATE, 
	postcode VARCHAR(16), 
	address_line VARCHAR(200), 
	city VARCHAR(100), 
	country VARCHAR(2), 
	pin_hash VARCHAR(200), 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "customers" VALUES(1,'Jane','Doe','jane@example.com','+15551230001','1985-04-12','90210','1 Elm Street','Springfield','US',NULL,'2026-11-30 10:00:00.000000');
CREATE TABLE invoices (
	id INTEGER NOT NULL, 
	customer_id INTEGER, 
	subscription_id INTEGER, 
	issued_at DATETIME NOT NULL, 
	amount NUMERIC(10, 2) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	description VARCHAR(200) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(customer_id) REFERENCES customers (id), 
	FOREIGN KEY(subscription_id) REFERENCES subscriptions (id)
);
INSERT INTO "invoices" VALUES(1,1,1,'2026-11-30 10:00:00.000000',9.99,'paid','Coffee club, November');
CREATE TABLE order_items (
	id INTEGER NOT NULL, 
	order_id INTEGER NOT NULL, 
	sku VARCHAR(20) NOT NULL, 
	name VARCHAR(120) NOT NULL, 
	quantity INTEGER NOT NULL, 
	unit_price NUMERIC(10, 2) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(order_id) REFERENCES orders (id)
);
INSERT INTO "order_items" VALUES(1,1,'SKU-1','Kettle',1,59.9);
CREATE TABLE orders (
	id INTEGER NOT NULL, 
	number VARCHAR(5) NOT NULL, 
	customer_id INTEGER, 
	placed_at DATETIME NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	carrier VARCHAR(40), 
	tracking_number VARCHAR(40), 
	shipped_at DATETIME, 
	delivered_at DATETIME, 
	eta DATE, 
	total NUMERIC(10, 2) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (number), 
	FOREIGN KEY(customer_id) REFERENCES customers (id)
);
INSERT INTO "orders" VALUES(1,'45281',1,'2026-11-30 10:00:00.000000','shipped','UPS','1Z999','2026-11-30 10:00:00.000000',NULL,'2026-12-02',59.9);
CREATE TABLE returns (
	id INTEGER NOT NULL, 
	order_id INTEGER NOT NULL, 
	customer_id INTEGER, 
	reason TEXT, 
	status VARCHAR(16) NOT NULL, 
	rma VARCHAR(20) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(order_id) REFERENCES orders (id), 
	FOREIGN KEY(customer_id) REFERENCES customers (id), 
	UNIQUE (rma)
);
INSERT INTO "returns" VALUES(1,1,1,'broken','requested','RMA-1','2026-11-30 10:00:00.000000');
CREATE TABLE subscriptions (
	id INTEGER NOT NULL, 
	customer_id INTEGER, 
	"plan" VARCHAR(60) NOT NULL, 
	monthly_price NUMERIC(10, 2) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	started_at DATETIME NOT NULL, 
	renews_at DATETIME, 
	cancelled_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(customer_id) REFERENCES customers (id)
);
INSERT INTO "subscriptions" VALUES(1,1,'Coffee club',9.99,'active','2026-11-30 10:00:00.000000','2026-11-30 10:00:00.000000',NULL);
CREATE TABLE verification_attempts (
	id INTEGER NOT NULL, 
	customer_id INTEGER NOT NULL, 
	contact_id INTEGER, 
	at DATETIME NOT NULL, 
	method VARCHAR(20) NOT NULL, 
	success BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(customer_id) REFERENCES customers (id)
);
INSERT INTO "verification_attempts" VALUES(1,1,1,'2026-11-30 10:00:00.000000','pin',1);
CREATE TABLE voicebot_audit (id INTEGER NOT NULL, at DATETIME NOT NULL, username VARCHAR(64) NOT NULL, action VARCHAR(32) NOT NULL, call_id VARCHAR(64), "detail" VARCHAR(128), PRIMARY KEY (id));
INSERT INTO "voicebot_audit" VALUES(1,'2026-12-03 07:52:47.409130','alice','open_call','call-1','127.0.0.1');
CREATE TABLE voicebot_call_turns (
	id INTEGER NOT NULL, 
	call_id VARCHAR(64) NOT NULL, 
	seq INTEGER NOT NULL, 
	speaker VARCHAR(8) NOT NULL, 
	text TEXT NOT NULL, 
	start DATETIME NOT NULL, 
	"end" DATETIME, 
	intents JSON NOT NULL, 
	latency_ms FLOAT, 
	extra JSON NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(call_id) REFERENCES voicebot_calls (id) ON DELETE CASCADE
);
INSERT INTO "voicebot_call_turns" VALUES(1,'call-1',0,'caller','where is my order 45281','2026-11-30 10:00:05.000000','2026-11-30 10:00:05.000000','[{"name": "order_status"}]',NULL,'{"signals": {"frustration": 0.35}}');
INSERT INTO "voicebot_call_turns" VALUES(2,'call-1',1,'bot','It is on its way.','2026-11-30 10:00:05.000000','2026-11-30 10:00:05.000000','[]',640.0,'{}');
CREATE TABLE voicebot_calls (id VARCHAR(64) NOT NULL, channel VARCHAR(16) NOT NULL, caller_id VARCHAR(128), start DATETIME NOT NULL, "end" DATETIME, outcome VARCHAR(32), end_reason VARCHAR(32), "dialled" VARCHAR(128), "intents" JSON, "frustration_max" FLOAT, "agent_id" VARCHAR(64), "customer_id" INTEGER, PRIMARY KEY (id));
INSERT INTO "voicebot_calls" VALUES('call-1','sip','+15551230001','2026-12-03 07:52:46.839113','2026-12-03 07:52:46.969090','transferred','handoff','+18005550100','["order_status"]',0.35,'alice',NULL);
CREATE TABLE voicebot_sessions (
	token_sha256 VARCHAR(64) NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	created DATETIME NOT NULL, 
	expires DATETIME NOT NULL, 
	PRIMARY KEY (token_sha256), 
	FOREIGN KEY(username) REFERENCES voicebot_users (username) ON DELETE CASCADE
);
INSERT INTO "voicebot_sessions" VALUES('0096320a4b5e459680963e94438037b1015c116ec11622afdf4d145e5c1f4ed2','alice','2026-12-03 07:52:47.395952','2026-12-03 19:52:47.395952');
CREATE TABLE voicebot_transfer_turns (
	id INTEGER NOT NULL, 
	call_id VARCHAR(64) NOT NULL, 
	speaker VARCHAR(8) NOT NULL, 
	text TEXT NOT NULL, 
	start DATETIME NOT NULL, 
	"end" DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "voicebot_transfer_turns" VALUES(1,'call-1','caller','hello alice','2026-11-30 10:00:05.000000','2026-11-30 10:00:05.000000');
INSERT INTO "voicebot_transfer_turns" VALUES(2,'call-1','agent','hello, how can I help','2026-11-30 10:00:05.000000','2026-11-30 10:00:05.000000');
CREATE TABLE voicebot_transfers (
	id INTEGER NOT NULL, 
	call_id VARCHAR(64) NOT NULL, 
	queue VARCHAR(64), 
	agent_id VARCHAR(64), 
	outcome VARCHAR(32) NOT NULL, 
	wait_s FLOAT NOT NULL, 
	talk_s FLOAT, 
	callback_id INTEGER, 
	voicemail_s FLOAT, 
	at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "voicebot_transfers" VALUES(1,'call-1','general','alice','answered',4.5,30.0,NULL,NULL,'2026-12-03 07:52:47.481232');
CREATE TABLE voicebot_users (
	username VARCHAR(64) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	agent_id VARCHAR(64), 
	password_hash VARCHAR(256) NOT NULL, 
	created DATETIME NOT NULL, 
	PRIMARY KEY (username)
);
INSERT INTO "voicebot_users" VALUES('alice','agent','alice','scrypt$16384$8$1$2128ac20b902b685592a25b935e9baa4$9e58f919c13781f390a5c7f5e4cda900ddc0bb4602159a72cd5db69828d538dac69793fa9d2cf264e5fc0ffa13ae80b3ea807786bb2a0367a57667996725efc3','2026-12-03 07:52:47.278735');
CREATE TABLE voicebot_voicemails (
	id INTEGER NOT NULL, 
	call_id VARCHAR(64) NOT NULL, 
	queue VARCHAR(64) NOT NULL, 
	caller VARCHAR(128), 
	reason VARCHAR(32) NOT NULL, 
	seconds FLOAT NOT NULL, 
	transcript TEXT NOT NULL, 
	wav BLOB NOT NULL, 
	handoff JSON NOT NULL, 
	at DATETIME NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "voicebot_voicemails" VALUES(1,'call-1','general','+15551230001','no_agents',0.0,'please call me back',X'524946463400000057415645666D74201000000001000100803E0000007D000002001000646174611000000000000000000000000000000000000000','{"intent": "order_status"}','2026-12-03 07:52:47.511056','new');
CREATE INDEX ix_customers_phone ON customers (phone);
CREATE INDEX ix_audit_log_at ON audit_log (at);
CREATE INDEX ix_audit_log_customer_id ON audit_log (customer_id);
CREATE INDEX ix_orders_customer_id ON orders (customer_id);
CREATE INDEX ix_subscriptions_customer_id ON subscriptions (customer_id);
CREATE INDEX ix_contacts_caller_id ON contacts (caller_id);
CREATE INDEX ix_contacts_customer_id ON contacts (customer_id);
CREATE INDEX ix_contacts_started_at ON contacts (started_at);
CREATE INDEX ix_verification_attempts_customer_id ON verification_attempts (customer_id);
CREATE INDEX ix_order_items_order_id ON order_items (order_id);
CREATE INDEX ix_returns_order_id ON returns (order_id);
CREATE INDEX ix_returns_customer_id ON returns (customer_id);
CREATE INDEX ix_invoices_customer_id ON invoices (customer_id);
CREATE INDEX ix_voicebot_calls_start ON voicebot_calls (start);
CREATE INDEX ix_voicebot_audit_at ON voicebot_audit (at);
CREATE INDEX ix_voicebot_audit_username ON voicebot_audit (username);
CREATE INDEX ix_voicebot_audit_call_id ON voicebot_audit (call_id);
CREATE INDEX ix_voicebot_call_turns_call_id ON voicebot_call_turns (call_id);
CREATE INDEX ix_voicebot_sessions_username ON voicebot_sessions (username);
CREATE INDEX ix_voicebot_sessions_expires ON voicebot_sessions (expires);
CREATE INDEX ix_callback_requests_call_id ON callback_requests (call_id);
CREATE INDEX ix_callback_requests_status ON callback_requests (status);
CREATE INDEX ix_callback_requests_queue ON callback_requests (queue);
CREATE INDEX ix_voicebot_transfers_call_id ON voicebot_transfers (call_id);
CREATE INDEX ix_voicebot_transfer_turns_call_id ON voicebot_transfer_turns (call_id);
CREATE INDEX ix_voicebot_voicemails_call_id ON voicebot_voicemails (call_id);
COMMIT;
