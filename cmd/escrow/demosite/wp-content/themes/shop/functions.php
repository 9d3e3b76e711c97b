<?php
add_action('wp_enqueue_scripts', function () {
    wp_enqueue_style('shop', get_stylesheet_uri());
});
