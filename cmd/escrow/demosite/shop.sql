-- Demo database dump of the shop.
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100), email VARCHAR(100), balance DECIMAL(10,2));
INSERT INTO customers VALUES (1,'Ada','ada@example.com',120.00),(2,'Grace','grace@example.com',35.50),(3,'Linus','linus@example.com',0.00);
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, total DECIMAL(10,2), placed_at DATETIME);
INSERT INTO orders VALUES (1,1,42.00,'2026-11-20 10:00:00'),(2,2,17.25,'2026-11-21 14:30:00');
