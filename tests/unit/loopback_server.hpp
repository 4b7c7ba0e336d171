#pragma once
// A loopback HTTP/1.1 server for unit tests of HTTP clients (net::HttpClient, the Airflow relay).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace btcml::test_support {

/// A request as the loopback server saw it.
struct Seen {
    std::string method;
    std::string target;
    std::string head; // request line and headers, raw
    std::string body;

    [[nodiscard]] bool has_header(std::string_view prefix) const {
        return head.find("\r\n" + std::string(prefix)) != std::string::npos;
    }
};

struct Reply {
    int status = 200;
    std::string headers; // extra header lines, each ending in \r\n
    std::string body;
    std::chrono::milliseconds delay{0};
};

/// A loopback HTTP/1.1 server on 127.0.0.1 and a free port, one request per connection, answering with `handler`.
class LoopbackServer {
  public:
    explicit LoopbackServer(std::function<Reply(const Seen&)> handler) : handler_(std::move(handler)) {
        listener_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof(address);
        if (bind(listener_, reinterpret_cast<sockaddr*>(&address), length) != 0 || listen(listener_, 16) != 0 ||
            getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
            throw std::runtime_error("cannot listen on loopback");
        }
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~LoopbackServer() {
        shutdown(listener_, SHUT_RDWR); // wakes accept()
        thread_.join();
        close(listener_);
    }

    [[nodiscard]] std::string url(std::string_view path, std::string_view host = "127.0.0.1") const {
        return "http://" + std::string(host) + ":" + std::to_string(port_) + std::string(path);
    }
    [[nodiscard]] std::vector<Seen> seen() {
        const std::scoped_lock lock(mutex_);
        return seen_;
    }

  private:
    void serve() {
        for (;;) {
            const int connection = accept(listener_, nullptr, nullptr);
            if (connection < 0) return;
            handle(connection);
            close(connection);
        }
    }

    void handle(int connection) {
        std::string data;
        char buffer[4096];
        std::size_t head_end = std::string::npos;
        std::size_t wanted = 0;
        for (;;) {
            if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
                const auto at = data.find("Content-Length: ");
                wanted = head_end + 4 + (at < head_end ? std::stoul(data.substr(at + 16)) : 0);
            }
            if (head_end != std::string::npos && data.size() >= wanted) break;
            const auto n = recv(connection, buffer, sizeof(buffer), 0);
            if (n <= 0) return;
            data.append(buffer, static_cast<std::size_t>(n));
        }
        Seen request{.method = data.substr(0, data.find(' ')),
                     .target = data.substr(data.find(' ') + 1, data.find(' ', data.find(' ') + 1) - data.find(' ') - 1),
                     .head = data.substr(0, head_end + 2),
                     .body = data.substr(head_end + 4)};
        {
            const std::scoped_lock lock(mutex_);
            seen_.push_back(request);
        }
        const Reply reply = handler_(request);
        std::this_thread::sleep_for(reply.delay);
        const std::string response = "HTTP/1.1 " + std::to_string(reply.status) +
                                     " X\r\nContent-Length: " + std::to_string(reply.body.size()) +
                                     "\r\nConnection: close\r\n" + reply.headers + "\r\n" + reply.body;
        send(connection, response.data(), response.size(), MSG_NOSIGNAL);
    }

    std::function<Reply(const Seen&)> handler_;
    int listener_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::mutex mutex_;
    std::vector<Seen> seen_;
};

} // namespace btcml::test_support
