// The serve process's network side: the I/O thread pool, the listeners, SIGTERM/SIGINT, and the
// graceful drain.
#include "server/https/server.hpp"

#include "server/observability/logging.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sched.h>
#include <stdexcept>

namespace mtlsguard::https {
namespace net = boost::asio;
using tcp = net::ip::tcp;

unsigned available_cores() {
    unsigned cores = std::max(1U, std::thread::hardware_concurrency());
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0)
        cores = std::max(1U, static_cast<unsigned>(CPU_COUNT(&set)));
    // cgroup v2: "max 100000" (no quota) or "<quota> <period>" in microseconds.
    std::ifstream cpu_max("/sys/fs/cgroup/cpu.max");
    std::string quota;
    long long period = 0;
    if (cpu_max >> quota >> period && quota != "max" && period > 0) {
        try {
            const long long q = std::stoll(quota);
            const auto quota_cores =
                static_cast<unsigned>(std::max(1LL, (q + period - 1) / period));
            cores = std::min(cores, quota_cores);
        } catch (const std::exception&) {
            // An unreadable quota: keep the affinity count.
        }
    }
    return cores;
}

Server::Server(ServerSettings settings, RequestHandler& handler, observability::Metrics& metrics)
    : settings_(settings), handler_(handler), metrics_(metrics), loops_(settings.threads),
      signals_(loops_.first(), SIGINT, SIGTERM) {
    for (std::size_t i = 0; i < loops_.size(); ++i)
        work_.push_back(net::make_work_guard(loops_.at(i)));
}

Server::~Server() {
    stop();
}

void Server::start() {
    wait_for_signal();
    threads_.reserve(loops_.size());
    for (std::size_t i = 0; i < loops_.size(); ++i)
        threads_.emplace_back([&io = loops_.at(i)] {
            // A handler that throws is a bug; log it and keep the thread serving.
            while (true) {
                try {
                    io.run();
                    return;
                } catch (const std::exception& e) {
                    observability::log_event(observability::component_logger("serve"),
                                             spdlog::level::err,
                                             "unexpected exception in an I/O "
                                             "handler",
                                             {{"error", e.what()}});
                }
            }
        });
}

void Server::wait_for_signal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
        if (ec)
            return;
        if (signal_.load() != 0) {
            // A second signal while draining: the operator does not want to wait.
            observability::log_event(observability::component_logger("serve"), spdlog::level::warn,
                                     "second signal: exiting without finishing the drain",
                                     {{"signal", std::int64_t{signal}}});
            std::_Exit(1);
        }
        {
            std::lock_guard lock(mutex_);
            signal_.store(signal);
        }
        signalled_.notify_all();
        wait_for_signal();
    });
}

std::uint16_t Server::listen(const ListenAddress& address, TlsContextStore* tls, ListenerRole role,
                             std::size_t max_connections) {
    boost::system::error_code ec;
    const auto ip = net::ip::make_address(address.host, ec);
    const std::string text = address.host + ":" + std::to_string(address.port);
    if (ec)
        throw std::runtime_error("cannot listen on " + text + ": not an IP address");
    auto& context =
        contexts_.emplace_back(settings_.session, role, handler_, metrics_, tls, max_connections);
    try {
        auto listener =
            std::make_shared<Listener>(loops_, tcp::endpoint(ip, address.port), context);
        listener->run();
        listeners_.push_back(listener);
        return listener->port();
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("cannot listen on " + text + ": " + e.code().message());
    }
}

std::uint16_t Server::listen_tls(const ListenAddress& address, TlsContextStore& tls,
                                 ListenerRole role) {
    return listen(address, &tls, role, settings_.max_connections);
}

std::uint16_t Server::listen_plain(const ListenAddress& address, ListenerRole role) {
    // Scrapes and probes need few connections; they must not eat the webhook's budget either.
    return listen(address, nullptr, role, std::min<std::size_t>(settings_.max_connections, 64));
}

bool Server::wait_for_stop_signal(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return signalled_.wait_for(lock, timeout, [&] { return signal_.load() != 0; });
}

std::size_t Server::drain() {
    handler_.set_draining();
    for (const auto& listener : listeners_)
        listener->stop();
    for (auto& context : contexts_)
        context.tracker.drain_all();
    const auto deadline = std::chrono::steady_clock::now() + settings_.drain_timeout;
    std::size_t left = 0;
    for (auto& context : contexts_) {
        context.tracker.wait_until_idle(deadline);
        left += context.tracker.open_connections();
    }
    return left;
}

void Server::stop() {
    work_.clear();
    for (std::size_t i = 0; i < loops_.size(); ++i)
        loops_.at(i).stop();
    for (auto& thread : threads_)
        if (thread.joinable())
            thread.join();
    threads_.clear();
}

} // namespace mtlsguard::https
