"""Chinese words for the contract's codes, and Chinese messages for the APIs' field errors.

The APIs answer in English for programs (`{"error": {"fields": {"citizen.phone": "..."}}}`); a page
shows each field's error next to that field in Chinese, chosen by the field's path, so a citizen never
reads the English text.
"""

from __future__ import annotations

STATUS = {
    "submitted": "已提交",
    "assigned": "已受理派单",
    "in_progress": "已联系办理中",
    "replied": "已答复",
    "reopened": "重新办理",
    "closed": "已办结",
    "withdrawn": "已撤回",
}
EVENT = {
    "petition.submitted": "提交诉求",
    "petition.assigned": "受理并派单",
    "petition.transferred": "转办",
    "petition.contacted": "办理人已联系",
    "petition.replied": "办理人已答复",
    "petition.feedback_received": "评价",
    "petition.closed": "办结",
    "petition.reopened": "重新办理",
    "petition.withdrawn": "撤回",
    "petition.sla_paused": "暂停计时",
    "petition.sla_resumed": "恢复计时",
}
SATISFACTION = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}
RESOLUTION = {"resolved": "已解决", "explained": "已解释说明", "unresolvable": "暂无法解决"}
PAUSE_REASON = {"citizen_unreachable": "群众无法联系", "third_party": "等待第三方", "citizen_deferred": "群众要求延后"}
CLOSED_BY = {"feedback": "群众评价", "timeout": "超期未评价", "staff": "工作人员办结"}
ROLE = {
    "grid_leader": "网格长",
    "village_cadre": "包联村干部",
    "town_supervisor": "镇街督办",
    "county_dispatcher": "县指挥中心派单员",
    "auditor": "审计员",
}
CLOCK = {"contact": "联系时限", "reply": "答复时限"}
CLOCK_STATE = {
    "on_track": "正常",
    "warned": "即将超时",
    "breached": "已超时",
    "met": "已完成",
    "stopped": "已停止",
    "unknown": "未知",
}
LEVEL = {1: "网格", 2: "镇街", 3: "县级"}
DEPARTMENT = {
    "county_housing_bureau": "县住建局",
    "county_ecology_bureau": "县生态环境局",
    "county_transport_bureau": "县交通运输局",
    "county_utilities_office": "县公用事业服务中心",
    "town_mediation_office": "镇街调解办",
    "county_civil_affairs_bureau": "县民政局",
    "county_organization_dept": "县委组织部",
    "county_public_security_bureau": "县公安局",
    "county_education_bureau": "县教育局",
    "county_health_commission": "县卫健委",
    "county_agriculture_bureau": "县农业农村局",
    "county_emergency_bureau": "县应急管理局",
    "county_dispatch_centre": "县指挥中心",
}

# the message a page shows for an API field error, by the field's path (the first that matches wins)
FIELD_MESSAGES = {
    "category": "请选择诉求类别",
    "content": "请填写诉求内容（1至5000字）",
    "location.town": "请选择所在镇街",
    "location.village": "请选择所在村（社区）",
    "location.address": "详细地址过长或含有不允许的字符",
    "location.lat": "位置坐标无效，请重新定位",
    "location.lon": "位置坐标无效，请重新定位",
    "location": "请选择所在位置",
    "citizen.name": "请填写姓名（1至50字）",
    "citizen.phone": "请填写正确的手机号码或带区号的固定电话",
    "citizen": "请填写联系人信息",
    "Idempotency-Key": "请勿重复提交，请刷新页面后重试",
    "satisfaction": "请选择满意程度",
    "comment": "评价内容过长",
    "tracking_code": "查询码不正确",
    "phone": "请填写正确的手机号码",
    "name": "请填写姓名",
    "summary": "请填写答复内容（1至5000字）",
    "resolution": "请选择办理结果",
    "reason": "请填写或选择原因",
    "grid_id": "请选择正确的网格",
    "department": "请选择正确的承办部门",
    "note": "备注过长",
}


def field_message(path: str) -> str:
    """The Chinese message for an API error on `path` (e.g. "citizen.phone", "location/town")."""
    path = path.replace("/", ".").strip(".")
    while path:
        if path in FIELD_MESSAGES:
            return FIELD_MESSAGES[path]
        path = path.rpartition(".")[0]
    return "此项填写有误，请检查"


def field_errors(fields: dict[str, str]) -> dict[str, str]:
    """API field errors as {form field name: Chinese message}; form names use dots like the API."""
    return {path.replace("/", ".").strip("."): field_message(path) for path in fields}


def department(code: str | None) -> str:
    return DEPARTMENT.get(code or "", code or "—")
