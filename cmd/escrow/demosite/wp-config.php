<?php
// Demo site configuration: these credentials are examples, not secrets.
define('DB_NAME', 'shop');
define('DB_USER', 'shop');
define('DB_PASSWORD', 'example-only');
define('DB_HOST', '127.0.0.1');
$table_prefix = 'wp_';
