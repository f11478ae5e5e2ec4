fn main() {
    server::run_cli();
}
