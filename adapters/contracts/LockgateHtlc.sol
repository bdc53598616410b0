// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Lockgate hash-time-locked contract for native coin and ERC-20 tokens.
/// @notice A lock holds `amount` of `token` (address(0): the chain's native
/// coin) from `sender` for `recipient` under `hashlock` = SHA-256(preimage)
/// until `timelock` (a block timestamp, seconds). Before the timelock anyone
/// may claim it with the 32-byte preimage, paying the recipient; from the
/// timelock on anyone may refund it, paying the sender. A lock settles once.
/// @dev The lock id is keccak256(abi.encode(sender, salt)): the sender picks
/// the salt, so an id is known before the lock is mined (a resubmitted lock
/// cannot make a second one) and nobody else can take a sender's ids.
/// Effects come before every external call, and a guard refuses re-entry.
contract LockgateHtlc {
    enum State {
        None,
        Locked,
        Claimed,
        Refunded
    }

    struct Lock {
        address sender;
        uint64 timelock;
        State state;
        address recipient;
        address token;
        uint256 amount;
        bytes32 hashlock;
    }

    /// @notice Every lock ever made, by id.
    mapping(bytes32 => Lock) public locks;

    uint256 private entered = 1;

    event Locked(
        bytes32 indexed id,
        bytes32 indexed hashlock,
        address indexed recipient,
        address sender,
        address token,
        uint256 amount,
        uint64 timelock
    );
    event Claimed(bytes32 indexed id, bytes32 preimage);
    event Refunded(bytes32 indexed id);

    error LockExists(bytes32 id);
    error NotLocked(bytes32 id);
    error ZeroAmount();
    error ZeroRecipient();
    error TimelockPassed(uint64 timelock);
    error TimelockNotPassed(uint64 timelock);
    error WrongPreimage();
    error WrongValue(uint256 sent, uint256 expected);
    error TokenTransferFailed(address token);
    error TokenAmountMismatch(uint256 received, uint256 expected);
    error NativeTransferFailed(address to);
    error Reentered();

    modifier guarded() {
        if (entered != 1) revert Reentered();
        entered = 2;
        _;
        entered = 1;
    }

    /// @notice The id a lock from `sender` with `salt` gets.
    function lockId(address sender, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encode(sender, salt));
    }

    /// @notice Locks `amount` of `token` (address(0): native coin, sent as
    /// the call's value) for `recipient` under `hashlock` until `timelock`.
    /// An ERC-20 lock needs an allowance of `amount` to this contract.
    function lock(
        bytes32 salt,
        address recipient,
        address token,
        uint256 amount,
        bytes32 hashlock,
        uint64 timelock
    ) external payable guarded returns (bytes32 id) {
        id = lockId(msg.sender, salt);
        if (locks[id].state != State.None) revert LockExists(id);
        if (amount == 0) revert ZeroAmount();
        if (recipient == address(0)) revert ZeroRecipient();
        if (timelock <= block.timestamp) revert TimelockPassed(timelock);
        locks[id] = Lock({
            sender: msg.sender,
            timelock: timelock,
            state: State.Locked,
            recipient: recipient,
            token: token,
            amount: amount,
            hashlock: hashlock
        });
        emit Locked(id, hashlock, recipient, msg.sender, token, amount, timelock);
        if (token == address(0)) {
            if (msg.value != amount) revert WrongValue(msg.value, amount);
        } else {
            if (msg.value != 0) revert WrongValue(msg.value, 0);
            uint256 before = _balanceOf(token);
            _call(token, abi.encodeWithSelector(0x23b872dd, msg.sender, address(this), amount));
            uint256 received = _balanceOf(token) - before;
            if (received != amount) revert TokenAmountMismatch(received, amount);
        }
    }

    /// @notice Claims lock `id` with `preimage`, paying its recipient.
    function claim(bytes32 id, bytes32 preimage) external guarded {
        Lock storage l = locks[id];
        if (l.state != State.Locked) revert NotLocked(id);
        if (block.timestamp >= l.timelock) revert TimelockPassed(l.timelock);
        if (sha256(abi.encodePacked(preimage)) != l.hashlock) revert WrongPreimage();
        l.state = State.Claimed;
        emit Claimed(id, preimage);
        _pay(l.token, l.recipient, l.amount);
    }

    /// @notice Refunds the expired lock `id` to its sender.
    function refund(bytes32 id) external guarded {
        Lock storage l = locks[id];
        if (l.state != State.Locked) revert NotLocked(id);
        if (block.timestamp < l.timelock) revert TimelockNotPassed(l.timelock);
        l.state = State.Refunded;
        emit Refunded(id);
        _pay(l.token, l.sender, l.amount);
    }

    function _pay(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert NativeTransferFailed(to);
        } else {
            _call(token, abi.encodeWithSelector(0xa9059cbb, to, amount));
        }
    }

    /// A token call that must succeed and return true or nothing (tokens
    /// that return no value, such as USDT, are accepted).
    function _call(address token, bytes memory data) private {
        if (token.code.length == 0) revert TokenTransferFailed(token);
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok || (ret.length != 0 && (ret.length != 32 || !abi.decode(ret, (bool))))) {
            revert TokenTransferFailed(token);
        }
    }

    function _balanceOf(address token) private view returns (uint256) {
        (bool ok, bytes memory ret) = token.staticcall(abi.encodeWithSelector(0x70a08231, address(this)));
        if (!ok || ret.length != 32) revert TokenTransferFailed(token);
        return abi.decode(ret, (uint256));
    }
}
